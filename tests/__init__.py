"""The test suite. Its processes defer the SDK's package `__init__` files as larkfleet's do
(shared/lazysdk.py): this runs before any test module's `import lark_oapi`, in pytest's
processes and in the interpreters the tests spawn, which import the SDK in ~1 s, not ~5 s."""

from shared import lazysdk

lazysdk.install()

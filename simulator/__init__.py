"""A stand-in for the Feishu open platform that the real lark_oapi SDK talks to unchanged."""

from shared import lazysdk

lazysdk.install()  # the simulator reads the SDK's frame type only: ~1 s of imports, not ~5 s

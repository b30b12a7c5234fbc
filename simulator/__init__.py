"""A stand-in for the Feishu open platform that the real lark_oapi SDK talks to unchanged."""

"""The SDK's version, sent in Hello.sdk."""

__version__ = "0.1.0"
SDK = f"pfc-python/{__version__}"

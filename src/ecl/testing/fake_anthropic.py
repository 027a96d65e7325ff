"""Shell entry of the fake Anthropic server: ``python -m ecl.testing.fake_anthropic``.

See :mod:`ecl.testing.anthropic_server` for the server and the script format.
"""

from ecl.testing.anthropic_server import FakeAnthropicServer, Reply, main

__all__ = ["FakeAnthropicServer", "Reply", "main"]

if __name__ == "__main__":
    main()

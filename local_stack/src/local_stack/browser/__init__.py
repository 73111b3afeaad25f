"""Developer tooling that is not part of the platform's definitions: the browser harness and screenshots."""

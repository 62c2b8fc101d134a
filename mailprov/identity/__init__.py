"""The identity gate's verifiers: tokens, certificates, one-time codes, a test issuer."""

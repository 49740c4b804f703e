"""Who is who, below the audit log (it imports no audit, config or page code): signatures over messages
(signing.py), trusts' bearer tokens (tokens.py), the network registry and its keys (registry.py, keystore.py),
mutual TLS (tls.py), authenticating callers (authentication.py), the hub's own signing key (hubkey.py), the signed
notes that carry audit checkpoints (notes.py), the one vocabulary of staff roles (roles.py), staff bearer tokens
(staff.py) and staff sign-in through OpenID Connect (oidc_client.py, oidc_documents.py). The development OIDC
provider, a web page, is service/ui/dev_idp.py."""

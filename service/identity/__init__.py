"""Who is who: staff sign-in through OpenID Connect (`oidc_client`), the staff roles the pages know
(`staff_roles`), the development OIDC provider (`dev_idp`, off unless HANDOVER_DEV_IDP=1), and the hub's own
signing key in service (`hubkey`)."""

"""Who is who for people: staff sign-in through OpenID Connect (`oidc_client`), the staff roles the pages know
(`staff_roles`), and the development OIDC provider (`dev_idp`, off unless HANDOVER_DEV_IDP=1)."""

#!/bin/sh
# Patroni's post_bootstrap: runs once on the node that made the cluster, with a superuser connection URL as $1.
# Makes the hub's login role and its database; the password is APP_DB_PASSWORD from the node's environment.
set -eu
psql "$1" -v ON_ERROR_STOP=1 -v password="${APP_DB_PASSWORD:?APP_DB_PASSWORD is not set}" <<'SQL'
CREATE ROLE handover LOGIN PASSWORD :'password';
CREATE DATABASE handover OWNER handover;
SQL

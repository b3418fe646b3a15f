#!/bin/sh
# Entry point of the postgres image's first start (/docker-entrypoint-initdb.d): runs
# roles.sql with each service's password from the environment (docker-compose.yml).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
	-v enrollment_password="$ENROLLMENT_DB_PASSWORD" \
	-v collection_password="$COLLECTION_DB_PASSWORD" \
	-v benefits_password="$BENEFITS_DB_PASSWORD" \
	-v card_issuance_password="$CARD_ISSUANCE_DB_PASSWORD" \
	-v notification_password="$NOTIFICATION_DB_PASSWORD" \
	-f /docker-entrypoint-initdb.d/roles.sql.in

#!/usr/bin/env bash
# Prints a .env for docker-compose.yml with a fresh random password for every role and user:
#   bash deploy/compose/env.sh > .env && chmod 600 .env
# Letters and digits only, so they can stand in URLs unescaped. Keep the file: the database
# and broker volumes remember the passwords of their first start.
set -euo pipefail
pw() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32; }
echo "# docker-compose.yml secrets, made by deploy/compose/env.sh on $(date -u +%F)"
echo "RABBITMQ_ADMIN_USER=admin"
for var in POSTGRES_PASSWORD RABBITMQ_ADMIN_PASSWORD \
	ENROLLMENT_DB_PASSWORD COLLECTION_DB_PASSWORD BENEFITS_DB_PASSWORD CARD_ISSUANCE_DB_PASSWORD NOTIFICATION_DB_PASSWORD \
	ENROLLMENT_MQ_PASSWORD COLLECTION_MQ_PASSWORD BENEFITS_MQ_PASSWORD CARD_ISSUANCE_MQ_PASSWORD NOTIFICATION_MQ_PASSWORD \
	TAX_AUTHORITY_MQ_PASSWORD BANK_SIM_MQ_PASSWORD INSTITUTION_SIM_MQ_PASSWORD DATA_SHARING_MQ_PASSWORD SMSC_PASSWORD; do
	echo "$var=$(pw)"
done

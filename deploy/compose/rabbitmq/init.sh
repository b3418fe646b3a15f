#!/bin/sh
# One-shot step of docker-compose.yml after the broker is up: creates one user per service and
# simulator (no tags, password from the environment) and the services' data-sharing user
# (policymaker), then loads definitions.json (exchanges,
# permissions, topic permissions, policies; `insurancectl topology export --format definitions`)
# through the management API as the administrator. Idempotent: running it again sets the same
# state.
set -eu
api=${RABBITMQ_API_URL:-http://rabbitmq:15672}
auth="${RABBITMQ_ADMIN_USER}:${RABBITMQ_ADMIN_PASSWORD}"

put_user() {
	user=$1
	password=$2
	tags=${3:-}
	[ -n "$password" ] || { echo "init: no password for broker user $user" >&2; exit 1; }
	# The password goes in the body (stdin), not on the command line.
	printf '{"password":"%s","tags":"%s"}' "$password" "$tags" |
		curl -fsS -u "$auth" -X PUT -H 'content-type: application/json' --data-binary @- \
			"$api/api/users/$user" >/dev/null
	echo "init: broker user $user"
}

put_user enrollment "$ENROLLMENT_MQ_PASSWORD"
put_user collection "$COLLECTION_MQ_PASSWORD"
put_user benefits "$BENEFITS_MQ_PASSWORD"
put_user card-issuance "$CARD_ISSUANCE_MQ_PASSWORD"
put_user notification "$NOTIFICATION_MQ_PASSWORD"
put_user bank-sim "$BANK_SIM_MQ_PASSWORD"
put_user institution-sim "$INSTITUTION_SIM_MQ_PASSWORD"
# The services' data-sharing shovels, on the management API.
put_user data-sharing "$DATA_SHARING_MQ_PASSWORD" policymaker

curl -fsS -u "$auth" -X POST -H 'content-type: application/json' \
	--data-binary @/etc/insurance/definitions.json "$api/api/definitions" >/dev/null
echo "init: definitions loaded (permissions, topic permissions, exchanges, policies)"

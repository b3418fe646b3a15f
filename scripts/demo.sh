#!/usr/bin/env bash
# A day at the agency, told through insurancectl: an employer and its staff are enrolled on
# both lines, wages are declared, last month is assessed, the (simulated) tax authority pays,
# and what was not paid becomes arrears. Every run uses fresh people, so it can be repeated.
#
# Then a cutover: the medical line's counters are frozen intake-only, paperwork gets receipts
# while the social line keeps working, and the thaw processes what was held.
#
# Needs the services running (make run starts this script by itself) and, for payments,
# the tax-authority simulator. Inputs: AMQP_URL (and INSURANCE_PREFIX) as insurancectl reads them;
# DEMO_PAYMENT_WAIT, the seconds to wait for the simulated payment (30).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CTL="${CTL:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/insurancectl}"

say() { printf '\n[demo] %s\n' "$*"; }
ctl() { "$CTL" "$@"; }
# Quiet send: prints only the status line; fails the demo on a transport error.
send() {
	local out
	out=$("$CTL" send "$@" 2>&1) || { [[ $? == 2 ]] || { echo "$out"; return 1; }; }
	head -n 1 <<<"$out"
}

# GB 11643: 17 digits + check character (ISO 7064 MOD 11-2).
id_number() {
	local body=$1 w=(7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2) sum=0 i
	for i in {0..16}; do sum=$((sum + ${body:i:1} * w[i])); done
	local checks=(1 0 X 9 8 7 6 5 4 3 2)
	printf '%s%s' "$body" "${checks[sum % 11]}"
}

# GB 32100: 17 characters + check character over a 31-character alphabet.
credit_code() {
	local body=$1 alphabet=0123456789ABCDEFGHJKLMNPQRTUWXY w=(1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28) sum=0 i c v
	for i in {0..16}; do
		c=${body:i:1}
		v=${alphabet%%"$c"*}
		sum=$((sum + ${#v} * w[i]))
	done
	local check=$(((31 - sum % 31) % 31))
	printf '%s%s' "$body" "${alphabet:check:1}"
}

# Fresh identities per run: the sequence digits come from the clock.
seq=$(printf '%03d' $((10#$(date +%N | cut -c1-3) % 1000)))
day=$(printf '%02d' $((10#$(date +%d))))
EMPLOYER=$(credit_code "91420100$(date +%H%M%S)${seq}")
ALICE=$(id_number "42010219850312${seq}")
BOB=$(id_number "42010219900701${seq}")
CAROL=$(id_number "420102197811${day}${seq}")
DAVE=$(id_number "42010219550101${seq}")
MONTH=$(date -d "$(date +%Y-%m-01) -1 month" +%Y-%m)
YEAR=${MONTH%-*}

say "An employer registers on both lines (since the split, each line on its own)"
for line in medical social; do
	send "$line" enrollment register-employer --body "{\"credit_code\":\"$EMPLOYER\",\"name\":\"武汉示范科技有限公司\",\"contact\":{\"name\":\"李会计\",\"phone\":\"13900001111\"}}"
done

say "Two employees, a flexible worker and a retiree enroll in medical insurance"
send medical enrollment enroll-person --body "{\"id_number\":\"$ALICE\",\"name\":\"王芳\",\"phone\":\"13812345678\",\"category\":\"employee\",\"insurance_types\":[\"employee_medical\"],\"employer_credit_code\":\"$EMPLOYER\",\"effective_month\":\"$MONTH\"}"
send medical enrollment enroll-person --body "{\"id_number\":\"$BOB\",\"name\":\"赵强\",\"phone\":\"13812345679\",\"category\":\"employee\",\"insurance_types\":[\"employee_medical\"],\"employer_credit_code\":\"$EMPLOYER\",\"effective_month\":\"$MONTH\"}"
send medical enrollment enroll-person --body "{\"id_number\":\"$CAROL\",\"name\":\"孙丽\",\"phone\":\"13812345680\",\"category\":\"flexible\",\"insurance_types\":[\"employee_medical\"],\"effective_month\":\"$MONTH\"}"
send medical enrollment enroll-person --body "{\"id_number\":\"$DAVE\",\"name\":\"周伯\",\"phone\":\"13812345681\",\"category\":\"retiree\",\"insurance_types\":[\"employee_medical\",\"large_amount_medical\"],\"effective_month\":\"$MONTH\"}"

say "The employer declares its staff to the social line (增员)"
send social enrollment add-staff --body "{\"employer_credit_code\":\"$EMPLOYER\",\"persons\":[{\"id_number\":\"$ALICE\"},{\"id_number\":\"$BOB\"}],\"insurance_types\":[\"pension\",\"unemployment\",\"work_injury\"],\"month\":\"$MONTH\"}"

say "Wages for $YEAR are declared; collection determines the bases (clamped to floor and cap)"
declare_wages() {
	local line=$1 deadline=$((SECONDS + 30)) out
	# Collection learns of the enrollments through events: retry until its projection has them.
	while :; do
		out=$("$CTL" send "$line" collection declare-wages --body "{\"employer_credit_code\":\"$EMPLOYER\",\"year\":$YEAR,\"wages\":[{\"id_number\":\"$ALICE\",\"previous_year_average\":\"8000.00\"},{\"id_number\":\"$BOB\",\"previous_year_average\":\"26000.00\"}]}" 2>&1) && break
		((SECONDS < deadline)) || { echo "$out"; return 1; }
		sleep 0.5
	done
	head -n 1 <<<"$out"
}
declare_wages medical
declare_wages social

say "Last month ($MONTH) is assessed on both lines; the tax authority learns of it by subscription"
ctl send medical collection assess-month --body "{\"month\":\"$MONTH\"}" | sed -n '1,12p'
ctl send social collection assess-month --body "{\"month\":\"$MONTH\"}" | sed -n '1,12p'

say "The tax authority pays (simulated); the employer's statement shows it"
deadline=$((SECONDS + ${DEMO_PAYMENT_WAIT:-30}))
until ctl --json send medical collection employer-statement --body "{\"employer_credit_code\":\"$EMPLOYER\",\"month\":\"$MONTH\"}" | grep -q '"status":"settled"'; do
	((SECONDS < deadline)) || { say "no payment yet (is the tax-authority simulator running?)"; break; }
	sleep 1
done
ctl send medical collection employer-statement --body "{\"employer_credit_code\":\"$EMPLOYER\",\"month\":\"$MONTH\"}" | sed -n '1,16p'

SIM="${SIM:-$(dirname "$CTL")/institution-sim}"
if [[ ${DEMO_HOSPITAL:-1} == 1 && -x $SIM ]]; then
	say "A hospital settles the day's visits in real time (simulated institution: lookup, registration, fees, pre-settlement, settlement, cancels, a reversal, reconciliation)"
	psn_of() {
		"$CTL" --json send medical benefits person-info --body "{\"mdtrt_cert_type\":\"02\",\"mdtrt_cert_no\":\"$1\"}" 2>/dev/null |
			grep -o '"psn_no": *"[^"]*"' | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/' || true
	}
	deadline=$((SECONDS + 20))
	until [[ -n $(psn_of "$ALICE") && -n $(psn_of "$BOB") ]]; do
		((SECONDS < deadline)) || break
		sleep 0.5
	done
	if [[ -n $(psn_of "$ALICE") ]]; then
		"$SIM" --prefix "${INSURANCE_PREFIX:-}" --visits 6 \
			--patients "$(psn_of "$ALICE"):$ALICE,$(psn_of "$BOB"):$BOB" \
			--begntime "$(TZ=Asia/Shanghai date +%Y-%m-%dT%H:%M:%S+08:00)" 2>"${TMPDIR:-/tmp}/demo-institution.err" ||
			{ say "the institution simulator failed:"; tail -n 5 "${TMPDIR:-/tmp}/demo-institution.err"; }
	else
		say "benefits does not know Alice yet; no hospital day"
	fi
fi

say "Alice's contribution history (缴费信息查询)"
ctl send medical collection contribution-history --body "{\"id_number\":\"$ALICE\"}" | sed -n '1,14p'

say "Months still unpaid after their deadline become arrears"
send medical collection detect-arrears --body "{\"as_of\":\"$(date -d "$(date +%Y-%m-01) +2 month" +%Y-%m-%d)\"}"
send social collection detect-arrears --body "{\"as_of\":\"$(date -d "$(date +%Y-%m-01) +2 month" +%Y-%m-%d)\"}"
# The first string field NAME of the JSON on stdin.
field() { grep -o "\"$1\": *\"[^\"]*\"" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/' || true; }
# The status of the result on stdin (not the reply's own): its outermost one, which comes last
# (keys are sorted, so a batch's items come before it).
result_status() { sed 's/^{"status": *"[a-z]*",//' | grep -o '"status": *"[^"]*"' | tail -n 1 | sed 's/.*"\([^"]*\)"$/\1/' || true; }
NOW=$(TZ=Asia/Shanghai date +%Y-%m-%dT%H:%M:%S+08:00)
H3=H42010000001

if [[ ${DEMO_CLAIM:-1} == 1 ]]; then
	say "Alice gets her social security card: applied, photo approved, made by the bank, picked up and activated"
	for _ in {1..20}; do
		out=$("$CTL" send common card-issuance apply-card --body "{\"id_number\":\"$ALICE\",\"bank\":\"ICBC\"}" 2>&1 | head -n 1 || true)
		[[ $out == ok* ]] && break
		sleep 0.5
	done
	echo "$out"
	send common card-issuance review-photo --body "{\"id_number\":\"$ALICE\",\"approved\":true}"
	for _ in {1..60}; do
		step=$("$CTL" --json send common card-issuance get-card-status --channel online --body "{\"id_number\":\"$ALICE\"}" 2>/dev/null | field step)
		[[ $step == arrived-at-branch ]] && break
		sleep 1
	done
	send common card-issuance pick-up-card --channel bank --body "{\"id_number\":\"$ALICE\",\"representative\":{\"by\":\"self\"},\"documents\":[\"id_card\"],\"activate\":true}"

	say "Alice paid a visit in cash (no card with her that day): a reimbursement claim (手工报销), reviewed, approved and paid into her card by the bank"
	PSN=$("$CTL" --json send medical benefits person-info --body "{\"mdtrt_cert_type\":\"02\",\"mdtrt_cert_no\":\"$ALICE\"}" 2>/dev/null | field psn_no)
	claim=$("$CTL" --json send medical benefits submit-claim --body "{\"psn_no\":\"$PSN\",\"insutype\":\"310\",\"kind\":\"outpatient\",\"fixmedins_code\":\"$H3\",\"begntime\":\"$NOW\",\"reason\":\"no-card\",\"documents\":[{\"kind\":\"invoice\",\"uri\":\"docs://demo/invoice-$seq.jpg\"},{\"kind\":\"fee-list\",\"paper_mailed\":true}],\"feedetail\":[{\"feedetl_sn\":\"1\",\"med_list_codg\":\"XA01\",\"cnt\":\"1\",\"pric\":\"2000.00\",\"det_item_fee_sumamt\":\"2000.00\",\"fee_ocur_time\":\"$NOW\"}],\"medfee_sumamt\":\"2000.00\"}" 2>&1 || true)
	CLAIM=$(field claim_id <<<"$claim")
	if [[ -n $CLAIM ]]; then
		send medical benefits review-claim --body "{\"claim_id\":\"$CLAIM\",\"action\":\"start\",\"reviewer\":\"审核员张\"}"
		send medical benefits review-claim --body "{\"claim_id\":\"$CLAIM\",\"action\":\"approve\",\"reviewer\":\"审核员张\"}"
		for _ in {1..20}; do
			state=$("$CTL" --json send medical benefits claim-status --body "{\"claim_id\":\"$CLAIM\"}" 2>/dev/null | result_status)
			[[ $state == paid || $state == payment-failed ]] && break
			sleep 0.5
		done
		ctl send medical benefits claim-status --body "{\"claim_id\":\"$CLAIM\"}" | sed -n '1,24p'
	else
		echo "$claim" | sed -n '1,8p'
	fi

	say "A retiree moves here with 30 years of pension contributions (转入), retirement is approved (退休审核) and this month's pension run goes to the bank"
	FRANK=$(id_number "420102$(date -d "$(date +%Y-%m-01) -60 years -1 month" +%Y%m%d)${seq:0:2}1")
	send social enrollment transfer-in --body "{\"certificate\":{\"certificate_id\":\"$(cat /proc/sys/kernel/random/uuid)\",\"id_number\":\"$FRANK\",\"name\":\"郑海\",\"insurance_types\":[\"pension\"],\"from_region\":\"370100\",\"to_region\":\"420100\",\"contribution_history_ref\":\"370100:$FRANK\",\"issued_at\":\"$NOW\",\"contribution_months\":360,\"pension_account_balance\":\"98000.00\"},\"phone\":\"13812345683\",\"category\":\"flexible\",\"effective_month\":\"$(date +%Y-%m)\"}"
	for _ in {1..20}; do
		app=$("$CTL" --json send social benefits apply-retirement --body "{\"id_number\":\"$FRANK\",\"position\":\"worker\"}" 2>&1 || true)
		APPLICATION=$(field application_id <<<"$app")
		[[ -n $APPLICATION ]] && break
		sleep 0.5
	done
	if [[ -n $APPLICATION ]]; then
		ctl send social benefits review-retirement --body "{\"application_id\":\"$APPLICATION\",\"action\":\"approve\",\"reviewer\":\"审核员王\"}" | sed -n '1,20p'
		batch=$("$CTL" --json send social benefits run-benefit-payments --body "{\"month\":\"$(date +%Y-%m)\",\"kind\":\"pension\"}" 2>&1 || true)
		BATCH=$(field batch_id <<<"$batch")
		for _ in {1..20}; do
			state=$("$CTL" --json send social benefits batch-status --body "{\"batch_id\":\"$BATCH\"}" 2>/dev/null | result_status)
			[[ -n $state && $state != ordered ]] && break
			sleep 0.5
		done
		echo "(one batch per month and kind: a second demo in the same month shows the first run's batch)"
		ctl send social benefits batch-status --body "{\"batch_id\":\"$BATCH\"}" | sed -n '1,30p'
	else
		echo "$app" | sed -n '1,8p'
	fi
fi

# ---------------------------------------------------------------------------------------------
# A cutover (停机切换): the medical line is frozen for migration while the social line works.
# ---------------------------------------------------------------------------------------------
ERIN=$(id_number "42010219920815${seq}")
ORDER="demo-medical-counter-$(date +%H%M%S)${seq}"

say "Cutover: the medical line is frozen; its counters take in paperwork for later (收件, intake-only)"
ctl freeze order --id "$ORDER" --lines medical --channels counter --mode intake-only \
	--reason "医保系统切换（演示）" \
	--announcement "医保信息系统切换升级，期间柜台只收件、恢复后按收件顺序办理，咨询电话027-87812393"
ctl freeze status | sed -n '1,20p'

say "At the medical counter, a newcomer's enrollment is taken in and answered with a receipt"
out=$("$CTL" --json send medical enrollment enroll-person --channel counter --body "{\"id_number\":\"$ERIN\",\"name\":\"吴敏\",\"phone\":\"13812345682\",\"category\":\"flexible\",\"insurance_types\":[\"employee_medical\"],\"effective_month\":\"$MONTH\"}" 2>&1) || true
echo "$out"
RECEIPT=$(grep -o '"receipt":{"id":"[^"]*"' <<<"$out" | head -n 1 | sed 's/.*"id":"//; s/"$//')

say "Meanwhile the social line is not frozen: Erin's pension enrollment is done at once"
send social enrollment enroll-person --body "{\"id_number\":\"$ERIN\",\"name\":\"吴敏\",\"phone\":\"13812345682\",\"category\":\"flexible\",\"insurance_types\":[\"pension\"],\"effective_month\":\"$MONTH\"}"

if [[ -n $RECEIPT ]]; then
	say "The receipt, while the line is frozen"
	ctl receipt show "$RECEIPT" | sed -n '1,12p'
fi

say "Thaw: the order is lifted; what the counter took in is processed in arrival order"
ctl freeze lift "$ORDER"
if [[ -n $RECEIPT ]]; then
	deadline=$((SECONDS + 30))
	until ctl --json receipt show "$RECEIPT" 2>/dev/null | grep -Eq '"state": *"(processed|failed)"'; do
		((SECONDS < deadline)) || { say "receipt $RECEIPT not processed yet"; break; }
		sleep 0.5
	done
	ctl receipt show "$RECEIPT" | sed -n '1,20p'
fi
say "Erin, as the medical line knows her after the thaw"
ctl send medical enrollment get-person --body "{\"id_number\":\"$ERIN\"}" | sed -n '1,14p'

say "done: see the services' logs above; try: $CTL send medical collection list-arrears; $CTL freeze list"

//! The soak's reconciliation checks (issue 14 §2, `testkit::reconcile`): each passes on
//! consistent books and fails on a planted inconsistency.
//!
//! Books are the services' own: the real migrations of each service (and of the shared
//! messaging tables) applied into schemas of this test's own, owned by roles of their own as
//! the services run (dropped with the [`TestEnv`]), with rows shaped as the services write
//! them; and once, the books the real services leave after enrollment, assessment, payment,
//! settlement and cancellation through the broker.

use contracts::Line;
use contracts::benefits::commands::SetlInfo;
use messaging::client::CommandClient;
use serde_json::{Value, json};
use testkit::reconcile::{self, Check, Schemas};
use testkit::services::Services;
use testkit::{TestEnv, WAIT, credit_code, id_number, phone, send, wait_for};
use uuid::Uuid;

mod embedded {
    pub mod enrollment {
        refinery::embed_migrations!("../services/enrollment/migrations");
    }
    pub mod collection {
        refinery::embed_migrations!("../services/collection/migrations");
    }
    pub mod benefits {
        refinery::embed_migrations!("../services/benefits/migrations");
    }
    pub mod card_issuance {
        refinery::embed_migrations!("../services/card-issuance/migrations");
    }
    pub mod notification {
        refinery::embed_migrations!("../services/notification/migrations");
    }
}

/// A service's migrations as its `build` runs them (history table and all).
fn runner(service: &str) -> refinery::Runner {
    let (runner, history) = match service {
        "enrollment" => (
            embedded::enrollment::migrations::runner(),
            "enrollment_schema_history",
        ),
        "collection" => (
            embedded::collection::migrations::runner(),
            "collection_schema_history",
        ),
        "benefits" => (
            embedded::benefits::migrations::runner(),
            "benefits_schema_history",
        ),
        "card-issuance" => (
            embedded::card_issuance::migrations::runner(),
            "card_schema_history",
        ),
        "notification" => (
            embedded::notification::migrations::runner(),
            "notification_schema_history",
        ),
        other => panic!("no service {other}"),
    };
    messaging::runtime::migrations(runner, history)
}

/// `service`'s schema in `env`, made and migrated as a deployment makes it: its own role owns
/// it and runs the messaging and service migrations. Dropping the role (the environment's
/// teardown) drops the schema.
async fn migrated(env: &TestEnv, service: &str) -> String {
    let role = env.service_role(service);
    let settings = platform::db::DatabaseSettings {
        url: testkit::database_url(),
        user: Some(role),
        password: None,
        schema: env.schema(service),
        pool_size: 1,
        statement_timeout_ms: platform::db::DEFAULT_STATEMENT_TIMEOUT_MS,
        lock_timeout_ms: platform::db::DEFAULT_LOCK_TIMEOUT_MS,
        tls: Default::default(),
    };
    platform::db::migrate(&settings, vec![messaging::migrations(), runner(service)])
        .await
        .unwrap_or_else(|e| panic!("migrating {service}: {e:#}"));
    env.schema(service)
}

fn schemas(env: &TestEnv) -> Schemas {
    Schemas {
        enrollment: env.schema("enrollment"),
        collection: env.schema("collection"),
        benefits: env.schema("benefits"),
        card_issuance: env.schema("card-issuance"),
        notification: env.schema("notification"),
    }
}

/// The database as its administrator, as the soak's reconciliation runs.
async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&testkit::database_url(), tokio_postgres::NoTls)
        .await
        .expect("the test database as its administrator");
    tokio::spawn(conn);
    client
}

/// Five freshly migrated, empty schemas.
struct Books {
    /// Holds the schemas (and their roles) until the test ends.
    _env: TestEnv,
    s: Schemas,
    db: tokio_postgres::Client,
}

async fn books() -> Books {
    let env = TestEnv::new();
    for service in [
        "enrollment",
        "collection",
        "benefits",
        "card-issuance",
        "notification",
    ] {
        migrated(&env, service).await;
    }
    let s = schemas(&env);
    Books {
        _env: env,
        s,
        db: admin().await,
    }
}

impl Books {
    async fn run(&self, sql: &str) {
        self.db
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    async fn checks(&self) -> Vec<Check> {
        let checks = reconcile::reconcile(&self.db, &self.s)
            .await
            .expect("reconcile runs");
        for c in &checks {
            println!("{c}");
        }
        checks
    }

    /// The check whose name starts with `name`.
    async fn check(&self, name: &str) -> Check {
        find(&self.checks().await, name)
    }
}

fn find(checks: &[Check], name: &str) -> Check {
    checks
        .iter()
        .find(|c| c.name.starts_with(name))
        .unwrap_or_else(|| panic!("no check '{name}' among {checks:#?}"))
        .clone()
}

#[track_caller]
fn passes(c: &Check) {
    assert!(c.ok, "expected to pass: {c}");
}

#[track_caller]
fn fails(c: &Check, mentions: &[&str]) {
    assert!(!c.ok, "expected to fail: {c}");
    for m in mentions {
        assert!(c.detail.contains(m), "the failure should mention '{m}': {c}");
    }
}

// ---- collection ----

/// An assessment as collection holds it: its items (amounts), `due` and `paid` as recorded,
/// and its payments (amounts).
async fn assessment(
    b: &Books,
    payer: &str,
    items: &[&str],
    due: &str,
    payments: &[&str],
    paid: &str,
) -> Uuid {
    let (c, id, run) = (&b.s.collection, Uuid::now_v7(), Uuid::now_v7());
    b.run(&format!(
        "insert into {c}.assessments (assessment_id, line, payer_kind, payer_id, month, due, paid, deadline,
                                      created_run, plain_deadline)
         values ('{id}', 'medical', 'employer', '{payer}', '2024-03-01', {due}, {paid}, '2024-03-25', '{run}',
                 '2024-03-25')"
    ))
    .await;
    for (i, amount) in items.iter().enumerate() {
        let share = if i == 0 { "employer" } else { "employee" };
        b.run(&format!(
            "insert into {c}.assessment_items (assessment_id, run_id, person_id, insurance_type, share, base, rate, amount,
                                               line, month)
             values ('{id}', '{run}', '{}', 'employee_medical', '{share}', 5000.00, 0.02, {amount}, 'medical', '2024-03-01')",
            Uuid::now_v7()
        ))
        .await;
    }
    for (i, amount) in payments.iter().enumerate() {
        b.run(&format!(
            "insert into {c}.payments (receipt_no, assessment_id, amount, paid_at, channel, message_id)
             values ('T-{id}-{i}', '{id}', {amount}, '2024-03-20 10:00+08', 'tax', '{}')",
            Uuid::now_v7()
        ))
        .await;
    }
    id
}

#[tokio::test]
async fn collection_reconciles_to_the_fen_and_a_payment_one_fen_short_is_caught() {
    let b = books().await;
    let employers: Vec<String> = (0..5).map(|n| credit_code(7100 + n)).collect();
    // Settled, partly paid (30.00 outstanding), overpaid (5.00), not paid at all.
    assessment(
        &b,
        &employers[0],
        &["60.00", "40.00"],
        "100.00",
        &["100.00"],
        "100.00",
    )
    .await;
    assessment(&b, &employers[1], &["50.00"], "50.00", &["20.00"], "20.00").await;
    assessment(
        &b,
        &employers[2],
        &["10.00"],
        "10.00",
        &["10.00", "5.00"],
        "15.00",
    )
    .await;
    assessment(&b, &employers[3], &["7.00"], "7.00", &[], "0.00").await;
    let c = b.check("collection:").await;
    passes(&c);
    assert!(
        c.detail.contains("4 assessments (4 payer-months), 4 payments: assessed 167.00 = paid 135.00 + outstanding 37.00 - overpaid 5.00 (1 overpaid)"),
        "{c}"
    );

    // Paid one fen short, yet recorded as paid in full: nothing outstanding.
    let short = assessment(&b, &employers[4], &["100.00"], "100.00", &["99.99"], "100.00").await;
    let c = b.check("collection:").await;
    fails(
        &c,
        &[
            &short.to_string(),
            &employers[4],
            "assessed 100.00 = paid 99.99 + outstanding 0.00 - overpaid 0.00 does not hold",
        ],
    );

    // Items that no longer add up to what is due.
    b.run(&format!(
        "update {}.payments set amount = 100.00 where assessment_id = '{short}'",
        b.s.collection
    ))
    .await;
    passes(&b.check("collection:").await);
    b.run(&format!(
        "update {}.assessment_items set amount = 100.01 where assessment_id = '{short}'",
        b.s.collection
    ))
    .await;
    fails(
        &b.check("collection:").await,
        &[&short.to_string(), "assessed 100.01"],
    );
}

// ---- benefits ----

const H3: &str = "H42010000001";
const H2: &str = "H42010000002";

async fn person(b: &Books, n: u32) -> Uuid {
    let id = Uuid::now_v7();
    b.run(&format!(
        "insert into {}.persons (person_id, id_number, category) values ('{id}', '{}', 'employee')",
        b.s.benefits,
        id_number(n)
    ))
    .await;
    id
}

/// A contribution's credit to `person`'s account (as contribution-settled books it), booked
/// an hour before now.
async fn credit(b: &Books, person: Uuid, amount: &str) -> i64 {
    b.db.query_one(
        &format!(
            "insert into {}.account_entries (person_id, kind, amount, reference, message_id, booked_at)
             values ($1, 'credit', {amount}, 'assessment:' || gen_random_uuid() || ':employee_medical:employee', $2,
                     now() - interval '1 hour')
             returning entry_id",
            b.s.benefits
        ),
        &[&person, &Uuid::now_v7()],
    )
    .await
    .expect("credit")
    .get(0)
}

struct Settled {
    setl_id: Uuid,
    mdtrt_id: Uuid,
}

/// A settlement as 2207 books it: the visit, one fee line (settled), the row with its reply,
/// and the account's debit (when it paid anything). `split` is "amount = fund + account +
/// cash", all of the fund from the pool; `balc` is the balance replied.
async fn settle(b: &Books, person: Uuid, inst: &str, at: &str, split: &str, balc: &str) -> Settled {
    let parts: Vec<&str> = split.split(['=', '+']).map(str::trim).collect();
    let [medfee, fund, acct, cash] = parts[..] else {
        panic!("not 'amount = fund + account + cash': {split}")
    };
    let (s, setl_id, mdtrt_id) = (&b.s.benefits, Uuid::now_v7(), Uuid::now_v7());
    let setl_time: chrono::DateTime<chrono::FixedOffset> = at.parse().expect("an RFC 3339 time");
    b.run(&format!(
        "insert into {s}.visits (mdtrt_id, msgid, fixmedins_code, person_id, insutype, kind, ipt_otp_no, begntime,
                                 status, self_pay)
         values ('{mdtrt_id}', 'V-{mdtrt_id}', '{inst}', '{person}', '310', 'outpatient', 'N-{mdtrt_id}', '{at}',
                 'registered', false)"
    ))
    .await;
    b.run(&format!(
        "insert into {s}.fee_lines (mdtrt_id, feedetl_sn, med_list_codg, cnt, pric, det_item_fee_sumamt,
                                    fulamt_ownpay_amt, overlmt_amt, preselfpay_amt, inscp_scp_amt, selfpay_prop,
                                    chrgitm_lv, fee_ocur_time, setl_id)
         values ('{mdtrt_id}', '1', 'XA01', 1, {medfee}, {medfee}, 0, 0, 0, {medfee}, 0, '1', '{at}', '{setl_id}')"
    ))
    .await;
    let info = SetlInfo {
        setl_id: Some(setl_id.to_string()),
        mdtrt_id: mdtrt_id.to_string(),
        psn_no: person.to_string(),
        insutype: "310".into(),
        setl_time: Some(setl_time),
        medfee_sumamt: medfee.into(),
        fulamt_ownpay_amt: "0.00".into(),
        overlmt_selfpay: "0.00".into(),
        preselfpay_amt: "0.00".into(),
        inscp_scp_amt: medfee.into(),
        act_pay_dedc: "0.00".into(),
        hifp_pay: fund.into(),
        pool_prop_selfpay: "0.5".into(),
        hifob_pay: "0.00".into(),
        hifmi_pay: "0.00".into(),
        fund_pay_sumamt: fund.into(),
        acct_pay: acct.into(),
        acct_mulaid_pay: "0.00".into(),
        psn_cash_pay: cash.into(),
        balc: balc.into(),
        self_pay: false,
        mid_setl_flag: false,
        oth_pay: "0.00".into(),
        rule: "policy:1".into(),
        filings: vec![],
    };
    let result = serde_json::to_value(&info).expect("serialises");
    b.db.execute(
        &format!(
            "insert into {s}.settlements (setl_id, msgid, mdtrt_id, person_id, insutype, kind, fixmedins_code, year,
                 setl_time, setl_date, medfee_sumamt, fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt,
                 inscp_scp_amt, act_pay_dedc, hifp_pay, hifob_pay, hifmi_pay, fund_pay_sumamt, acct_pay,
                 acct_mulaid_pay, psn_cash_pay, result, rule, status)
             values ($1, $2, $3, $4, '310', 'outpatient', $5, $6, $7, $8, {medfee}, 0, 0, 0, {medfee}, 0, {fund}, 0, 0,
                     {fund}, {acct}, 0, {cash}, $9, 'policy:1', 'settled')"
        ),
        &[
            &setl_id,
            &format!("S-{setl_id}"),
            &mdtrt_id,
            &person,
            &inst,
            &chrono::Datelike::year(&setl_time),
            &setl_time,
            &setl_time.date_naive(),
            &result,
        ],
    )
    .await
    .expect("settlement row");
    b.run(&format!(
        "insert into {s}.account_entries (person_id, kind, amount, reference, setl_id, beneficiary, message_id)
         select '{person}', 'settlement', -{acct}, 'settlement:{setl_id}', '{setl_id}', '{person}', gen_random_uuid()
         where {acct} <> 0"
    ))
    .await;
    Settled { setl_id, mdtrt_id }
}

/// Cancels a settlement as 2208 does: its lines are free again and the account gets back what
/// it paid.
async fn cancel(b: &Books, st: &Settled) {
    let s = &b.s.benefits;
    b.run(&format!(
        "update {s}.settlements set status = 'cancelled', cancel_how = 'cancel', cancel_msgid = 'C-{id}',
                                    cancelled_at = now() where setl_id = '{id}';
         update {s}.fee_lines set setl_id = null where setl_id = '{id}';
         insert into {s}.account_entries (person_id, kind, amount, reference, setl_id, beneficiary, message_id)
         select person_id, 'reversal', acct_pay, 'reversal:{id}', setl_id, person_id, gen_random_uuid()
         from {s}.settlements where setl_id = '{id}' and acct_pay <> 0",
        id = st.setl_id
    ))
    .await;
}

#[tokio::test]
async fn a_fund_payment_without_its_settlement_or_its_funds_is_caught() {
    let b = books().await;
    let s = b.s.benefits.clone();
    let (alice, bob) = (person(&b, 7201).await, person(&b, 7202).await);
    credit(&b, alice, "100.00").await;
    credit(&b, bob, "100.00").await;
    let s1 = settle(
        &b,
        alice,
        H3,
        "2024-05-10T09:30:00+08:00",
        "1180.00 = 175.00 + 100.00 + 905.00",
        "0.00",
    )
    .await;
    let s2 = settle(
        &b,
        bob,
        H2,
        "2024-05-10T10:00:00+08:00",
        "200.00 = 120.00 + 30.00 + 50.00",
        "70.00",
    )
    .await;
    cancel(&b, &s2).await;
    let c = b.check("benefits: every fund payment").await;
    passes(&c);
    assert!(
        c.detail
            .contains("2 settlements (1 standing): standing fund 175.00 = pooled 175.00")
            && c.detail.contains("3 ledger payments and 1 settled fee lines"),
        "{c}"
    );

    // A debit naming a settlement that does not exist.
    let ghost = Uuid::now_v7();
    b.run(&format!(
        "insert into {s}.account_entries (person_id, kind, amount, reference, setl_id, beneficiary, message_id)
         values ('{bob}', 'settlement', -10.00, 'settlement:{ghost}', '{ghost}', '{bob}', gen_random_uuid())"
    ))
    .await;
    fails(
        &b.check("benefits: every fund payment").await,
        &[
            "1 payments naming no settlement",
            &format!("settlement {ghost} does not exist"),
        ],
    );
    b.run(&format!(
        "delete from {s}.account_entries where setl_id = '{ghost}'"
    ))
    .await;

    // A fee line settled by a settlement that does not exist.
    b.run(&format!(
        "update {s}.fee_lines set setl_id = '{ghost}' where mdtrt_id = '{}'",
        s2.mdtrt_id
    ))
    .await;
    fails(
        &b.check("benefits: every fund payment").await,
        &[&format!(
            "of visit {}: settlement {ghost} does not exist",
            s2.mdtrt_id
        )],
    );
    b.run(&format!(
        "update {s}.fee_lines set setl_id = null where mdtrt_id = '{}'",
        s2.mdtrt_id
    ))
    .await;

    // The ledger debited a fen less than the settlement says the account paid.
    b.run(&format!(
        "update {s}.account_entries set amount = -99.99 where setl_id = '{}' and kind = 'settlement'",
        s1.setl_id
    ))
    .await;
    fails(
        &b.check("benefits: every fund payment").await,
        &[&format!(
            "settlement {}: account paid 100.00, the ledger debited 99.99 in 1 entries",
            s1.setl_id
        )],
    );
    b.run(&format!(
        "update {s}.account_entries set amount = -100.00 where setl_id = '{}' and kind = 'settlement'",
        s1.setl_id
    ))
    .await;
    passes(&b.check("benefits: every fund payment").await);

    // A fund total that is not the sum of its funds: the schema refuses it
    // (settlements_fund_parts), so it is planted with the constraint dropped.
    let refused =
        b.db.batch_execute(&format!(
            "update {s}.settlements set hifp_pay = hifp_pay - 0.01 where setl_id = '{}'",
            s1.setl_id
        ))
        .await
        .expect_err("the schema refuses a fund total other than the sum of its funds");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
        "{refused:?}"
    );
    b.run(&format!(
        "alter table {s}.settlements drop constraint settlements_fund_parts;
         update {s}.settlements set hifp_pay = hifp_pay - 0.01 where setl_id = '{}'",
        s1.setl_id
    ))
    .await;
    fails(
        &b.check("benefits: every fund payment").await,
        &[
            &format!("settlement {}: fund 175.00 <> pooled 174.99", s1.setl_id),
            "hifp_pay 175.00 (row 174.99)",
        ],
    );
}

#[tokio::test]
async fn a_personal_account_off_by_a_fen_from_its_ledger_is_caught() {
    let b = books().await;
    let s = b.s.benefits.clone();
    let (alice, bob) = (person(&b, 7301).await, person(&b, 7302).await);
    let alice_credit = credit(&b, alice, "100.00").await;
    settle(
        &b,
        alice,
        H3,
        "2024-05-10T09:30:00+08:00",
        "300.00 = 200.00 + 60.00 + 40.00",
        "40.00",
    )
    .await;
    settle(
        &b,
        alice,
        H3,
        "2024-05-11T09:30:00+08:00",
        "100.00 = 50.00 + 40.00 + 10.00",
        "0.00",
    )
    .await;
    // Bob's settlement did not see a credit booked while it ran (credits do not lock the
    // person), whose entry nevertheless comes first: its reply says 0.00, the ledger 20.00.
    credit(&b, bob, "50.00").await;
    b.run(&format!(
        "insert into {s}.account_entries (person_id, kind, amount, reference, message_id)
         values ('{bob}', 'credit', 20.00, 'assessment:' || gen_random_uuid() || ':employee_medical:employee',
                 gen_random_uuid())"
    ))
    .await;
    settle(
        &b,
        bob,
        H2,
        "2024-05-10T10:00:00+08:00",
        "100.00 = 40.00 + 50.00 + 10.00",
        "0.00",
    )
    .await;
    let c = b.check("benefits: every personal-account").await;
    passes(&c);
    assert!(
        c.detail.contains("2 accounts, balance 20.00 = credits 170.00 - debits 150.00 + reversals 0.00")
            && c.detail.contains("3 settlement replies' balances = the ledger after their debit (1 differing only by concurrent credits)"),
        "{c}"
    );

    // The ledger a fen off the balances replied.
    b.run(&format!(
        "update {s}.account_entries set amount = 100.01 where entry_id = {alice_credit}"
    ))
    .await;
    fails(
        &b.check("benefits: every personal-account").await,
        &[
            "2 settlement replies disagreeing with the ledger",
            "replied balance 0.00",
            "the ledger stood at 0.01",
            "replied balance 40.00",
            "the ledger stood at 40.01",
        ],
    );
    b.run(&format!(
        "update {s}.account_entries set amount = 100.00 where entry_id = {alice_credit}"
    ))
    .await;
    passes(&b.check("benefits: every personal-account").await);

    // A debit beyond the balance.
    let carol = person(&b, 7303).await;
    credit(&b, carol, "10.00").await;
    settle(
        &b,
        carol,
        H2,
        "2024-05-12T10:00:00+08:00",
        "100.00 = 70.00 + 20.00 + 10.00",
        "-10.00",
    )
    .await;
    fails(
        &b.check("benefits: every personal-account").await,
        &[
            "1 debits overdrawing the ledger",
            &format!("account {carol}"),
            "left the ledger at -10.00",
        ],
    );

    // Entries of an account benefits knows no person of.
    let stranger = Uuid::now_v7();
    credit(&b, stranger, "5.00").await;
    fails(
        &b.check("benefits: every personal-account").await,
        &[&format!(
            "account {stranger}: 1 entries (5.00) but no such person"
        )],
    );
}

#[tokio::test]
async fn an_institution_day_whose_totals_differ_from_its_settlements_is_caught() {
    let b = books().await;
    let s = b.s.benefits.clone();
    let (alice, bob) = (person(&b, 7401).await, person(&b, 7402).await);
    credit(&b, alice, "100.00").await;
    credit(&b, bob, "100.00").await;
    let moved = settle(
        &b,
        alice,
        H3,
        "2024-05-10T09:30:00+08:00",
        "300.00 = 200.00 + 60.00 + 40.00",
        "40.00",
    )
    .await;
    settle(
        &b,
        bob,
        H3,
        "2024-05-10T23:59:00+08:00",
        "100.00 = 50.00 + 20.00 + 30.00",
        "80.00",
    )
    .await;
    settle(
        &b,
        bob,
        H2,
        "2024-05-10T11:00:00+08:00",
        "80.00 = 40.00 + 0.00 + 40.00",
        "80.00",
    )
    .await;
    // Just after midnight China time (16:10 UTC the day before): the next day's.
    settle(
        &b,
        alice,
        H3,
        "2024-05-11T00:10:00+08:00",
        "50.00 = 25.00 + 10.00 + 15.00",
        "30.00",
    )
    .await;
    let gone = settle(
        &b,
        bob,
        H3,
        "2024-05-10T12:00:00+08:00",
        "999.00 = 499.00 + 0.00 + 500.00",
        "80.00",
    )
    .await;
    cancel(&b, &gone).await;
    let c = b.check("benefits: the institutions' daily totals").await;
    passes(&c);
    assert!(
        c.detail.contains(
            "3 institution-days, 4 standing settlements: medfee 530.00, fund 315.00, account 90.00"
        ),
        "{c}"
    );
    let day = |d: &str| d.parse::<chrono::NaiveDate>().expect("a date");
    let totals: Vec<_> = reconcile::daily_totals(&b.db, &s)
        .await
        .expect("3201 totals")
        .into_iter()
        .map(|t| {
            (
                t.fixmedins_code,
                t.insutype,
                t.day,
                t.medfee_sumamt,
                t.fund_pay_sumamt,
                t.acct_pay,
                t.setl_cnt,
            )
        })
        .collect();
    let row = |inst: &str, d: &str, m: &str, f: &str, a: &str, n: i64| {
        (
            inst.to_owned(),
            "310".to_owned(),
            day(d),
            m.to_owned(),
            f.to_owned(),
            a.to_owned(),
            n,
        )
    };
    assert_eq!(
        totals,
        [
            row(H3, "2024-05-10", "400.00", "250.00", "80.00", 2),
            row(H2, "2024-05-10", "80.00", "40.00", "0.00", 1),
            row(H3, "2024-05-11", "50.00", "25.00", "10.00", 1),
        ],
        "3201 as the service answers it: standing settlements only, by the China day"
    );

    // A settlement booked under another day than the one its reply and time give.
    b.run(&format!(
        "update {s}.settlements set setl_date = '2024-05-11' where setl_id = '{}'",
        moved.setl_id
    ))
    .await;
    fails(
        &b.check("benefits: the institutions' daily totals").await,
        &[
            "2 institution-days whose totals differ",
            "H42010000001 310 2024-05-10: 3201 gives medfee 100.00, fund 50.00, account 20.00 in 1 settlements; \
             the replies add up to medfee 400.00, fund 250.00, account 80.00 in 2 settlements",
            "H42010000001 310 2024-05-11: 3201 gives medfee 350.00",
        ],
    );
    b.run(&format!(
        "update {s}.settlements set setl_date = '2024-05-10' where setl_id = '{}'",
        moved.setl_id
    ))
    .await;
    passes(&b.check("benefits: the institutions' daily totals").await);

    // A settlement's fee lines no longer add up to its amount.
    b.run(&format!(
        "update {s}.fee_lines set det_item_fee_sumamt = det_item_fee_sumamt + 0.01,
                                  fulamt_ownpay_amt = fulamt_ownpay_amt + 0.01
         where setl_id = '{}'",
        moved.setl_id
    ))
    .await;
    fails(
        &b.check("benefits: the institutions' daily totals").await,
        &["H42010000001 310 2024-05-10", "their fee lines to 400.01"],
    );
}

// ---- outbox and inbox ----

#[tokio::test]
async fn an_unpublished_outbox_row_or_unprocessed_backlog_is_caught() {
    let b = books().await;
    let row = |schema: &str, published: &str, failed: &str| {
        format!(
            "insert into {schema}.outbox (message_id, exchange, routing_key, message_type, body, published_at,
                                          failed_at, attempts, last_error)
             values (gen_random_uuid(), 'events', 'medical.collection.payment-recorded',
                     'collection.payment-recorded.v1', '{{}}', {published}, {failed}, 1, 'refused')"
        )
    };
    for (_, schema) in b.s.all() {
        b.run(&row(schema, "now()", "null")).await;
    }
    let checks = b.checks().await;
    for (service, _) in b.s.all() {
        let c = find(&checks, &format!("{service}: outbox drained"));
        passes(&c);
        assert!(c.detail.starts_with("1 outbox rows, 1 published"), "{c}");
    }

    b.run(&row(&b.s.collection, "null", "null")).await;
    b.run(&row(&b.s.benefits, "null", "now()")).await;
    b.run(&format!(
        "insert into {}.backlog (receipt_id, line, queue, order_id, message_id, message_type, routing_key, headers,
                                 body, received_at)
         values (gen_random_uuid(), 'medical', 'q', 'wuhan-2021', gen_random_uuid(), 'card.apply.v1',
                 'common.card-issuance.apply', '{{}}', '\\x7b7d', now())",
        b.s.card_issuance
    ))
    .await;
    let checks = b.checks().await;
    fails(
        &find(&checks, "collection: outbox drained"),
        &[
            "1 outbox rows unpublished",
            "medical.collection.payment-recorded",
            "1 attempt(s)",
        ],
    );
    fails(
        &find(&checks, "benefits: outbox drained"),
        &["1 outbox rows unpublished", "quarantined: refused"],
    );
    fails(
        &find(&checks, "card-issuance: outbox drained"),
        &["1 backlog commands unprocessed", "order wuhan-2021"],
    );
    passes(&find(&checks, "enrollment: outbox drained"));
    passes(&find(&checks, "notification: outbox drained"));

    // Processed, with a requester, and the final reply never confirmed by the broker.
    let processed = |schema: &str, confirmed: &str| {
        format!(
            "insert into {schema}.backlog (receipt_id, line, queue, order_id, message_id, message_type, routing_key,
                                           reply_to, headers, body, received_at, processed_at, reply, reply_confirmed_at)
             values (gen_random_uuid(), 'social', 'q', 'hangzhou-2020', gen_random_uuid(), 'enrollment.enroll-person.v1',
                     'social.enrollment.enroll-person', 'amq.gen-requester', '{{}}', '\\x7b7d', now(), now(),
                     '{{\"status\":\"ok\"}}', {confirmed})"
        )
    };
    b.run(&processed(&b.s.enrollment, "now()")).await;
    b.run(&processed(&b.s.notification, "null")).await;
    let checks = b.checks().await;
    passes(&find(&checks, "enrollment: outbox drained"));
    fails(
        &find(&checks, "notification: outbox drained"),
        &[
            "1 final replies of held requests unconfirmed",
            "social.enrollment.enroll-person (order hangzhou-2020",
            "final reply never confirmed",
        ],
    );
}

#[tokio::test]
async fn an_inbox_cannot_hold_a_message_twice_and_one_without_its_key_is_caught() {
    let b = books().await;
    let n = &b.s.notification;
    let id = Uuid::now_v7();
    let insert = |queue: &str| {
        format!(
            "insert into {n}.inbox (message_id, queue, message_type) values ('{id}', '{queue}', 'enrollment.person-enrolled.v1')"
        )
    };
    b.run(&insert("notification.medical")).await;
    // The key is the message id alone: a second row is refused, even under another queue.
    for queue in ["notification.medical", "notification.social"] {
        let e =
            b.db.batch_execute(&insert(queue))
                .await
                .expect_err("the inbox refuses a message id twice");
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            "{e:?}"
        );
    }
    let checks = b.checks().await;
    for (service, _) in b.s.all() {
        let c = find(&checks, &format!("{service}: no inbox message twice"));
        passes(&c);
        assert!(c.detail.ends_with("key: PRIMARY KEY (message_id)"), "{c}");
    }
    assert!(
        find(&checks, "notification: no inbox")
            .detail
            .starts_with("1 inbox rows = 1 distinct message ids"),
        "{checks:#?}"
    );

    // Without its key, a duplicate is caught by the rows (and the missing key by itself).
    b.run(&format!("alter table {n}.inbox drop constraint inbox_pkey"))
        .await;
    fails(
        &b.check("notification: no inbox").await,
        &[
            "inbox tables without their key",
            "has no key on message_id (keys: none)",
        ],
    );
    b.run(&insert("notification.social")).await;
    fails(
        &b.check("notification: no inbox").await,
        &[
            "1 message ids stored more than once",
            &format!("message {id} stored 2 times (queues notification.medical, notification.social)"),
            "2 inbox rows = 1 distinct message ids (2 per queue and id",
        ],
    );
    passes(&b.check("enrollment: no inbox").await);
}

// ---- logs ----

#[test]
fn the_log_scan_reports_full_id_and_phone_numbers_with_file_and_line_and_not_masked_ones() {
    let dir = std::env::temp_dir().join(format!("reconcile-logs-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let (known_id, known_phone) = (id_number(7501), phone(7501));
    let other_id = id_number(7502);
    // An ID number with X as its check character, written in lower case.
    let x_id = (7503..)
        .map(id_number)
        .find(|id| id.ends_with('X'))
        .expect("one ends in X");
    let masked_id = format!("{}**********{}", &known_id[..4], &known_id[14..]);
    let masked_phone = format!("{}****{}", &known_phone[..3], &known_phone[7..]);
    let mut wrong_check = other_id.clone().into_bytes();
    wrong_check[17] = if wrong_check[17] == b'1' { b'2' } else { b'1' };
    let wrong_check = String::from_utf8(wrong_check).expect("ascii");
    let lines = [
        format!(r#"{{"level":"INFO","msg":"enrolled","id_number":"{masked_id}","phone":"{masked_phone}"}}"#),
        format!(r#"{{"level":"WARN","msg":"rejected","id_number":"{known_id}"}}"#),
        "plain line, trace 4bf92f3577b34da6a3ce929d0e0e4736, amount 1180.00".to_owned(),
        format!("sms to {known_phone} sent"),
        format!("another person's number {}", other_id),
        format!("lower-case x: {}", x_id.to_lowercase()),
        "a mobile never used by the soak: 13712345678.".to_owned(),
        format!("not an ID, the check character is wrong: {wrong_check}"),
        "digits inside longer runs: 8613712345678 and 94201021960010100119".to_owned(),
        "a landline 02787654321 and a timestamp 1715300000123".to_owned(),
        // Digits inside a UUID's hex are no phone number (seen in a soak's message ids).
        "message_id 01a250e8-fa5b-734c-9b0c-e19674378117 and 01a250e5-1cff-75c8-b0a1-15351930697f".to_owned(),
    ];
    let app = dir.join("app.log");
    std::fs::write(&app, lines.join("\n")).expect("the log");
    let clean = dir.join("clean.log");
    std::fs::write(&clean, format!("{masked_id}\n{masked_phone}\n")).expect("the clean log");
    let ids = [known_id.clone(), x_id.clone()];
    let phones = [known_phone.clone()];

    let c = reconcile::scan_logs(std::slice::from_ref(&clean), &ids, &phones).expect("scan");
    println!("{c}");
    assert!(c.ok, "masked values are no finding: {c}");
    assert!(
        c.detail
            .starts_with("1 files, 2 lines, 2 ID numbers and 1 phone numbers"),
        "{c}"
    );

    let c = reconcile::scan_logs(&[clean.clone(), app.clone()], &ids, &phones).expect("scan");
    println!("{c}");
    assert!(!c.ok, "{c}");
    let masked = |s: &str, head: usize| {
        format!(
            "{}{}{}",
            &s[..head],
            "*".repeat(s.len() - head - 4),
            &s[s.len() - 4..]
        )
    };
    // Where each value stands on its line (1-based, in bytes).
    let at = |n: usize, value: &str| {
        let col = lines[n - 1].find(value).expect("the value is on the line") + 1;
        format!("{}:{n}: col {col}", app.display())
    };
    let found: Vec<&str> = c.detail.lines().skip(1).collect();
    assert_eq!(
        found,
        [
            format!(
                "{} ID number of the soak {}",
                at(2, &known_id),
                masked(&known_id, 4)
            ),
            format!(
                "{} phone number of the soak {}",
                at(4, &known_phone),
                masked(&known_phone, 3)
            ),
            format!(
                "{} ID number (valid GB 11643 check character) {}",
                at(5, &other_id),
                masked(&other_id, 4)
            ),
            format!(
                "{} ID number of the soak {}",
                at(6, &x_id.to_lowercase()),
                masked(&x_id, 4)
            ),
            format!("{} mainland mobile number 137****5678", at(7, "13712345678")),
        ],
        "{c}"
    );
    assert!(
        c.detail
            .starts_with("5 lines hold one in full; 2 files, 13 lines"),
        "{c}"
    );
    assert!(
        !c.detail.contains(&known_id) && !c.detail.contains(&known_phone) && !c.detail.contains(&other_id),
        "the report leaks nothing itself: {c}"
    );
    assert!(reconcile::scan_logs(&[dir.join("missing.log")], &ids, &phones).is_err());
    assert!(reconcile::scan_logs(&[app], &["1101**********002X".to_owned()], &phones).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the real services' books ----

const E: &str = "enrollment";
const C: &str = "collection";
const B: &str = "benefits";

async fn cmd(client: &CommandClient, service: &str, name: &str, body: Value) -> Value {
    let r = send(client, Line::Medical, service, name, body).await;
    assert!(r.is_ok(), "{service} {name}: {r:?}");
    r.result.unwrap_or(Value::Null)
}

async fn count(env: &TestEnv, service: &str, sql: &str) -> i64 {
    let db = env.pool(service).await.get().await.expect("a connection");
    db.query_one(sql, &[]).await.expect("count").get(0)
}

/// An employer whose `staff` are enrolled in employee medical from 2024-03 with a 5000.00 base
/// each (March is assessed later): their psn_no.
async fn employer(client: &CommandClient, env: &TestEnv, code: &str, staff: &[String]) -> Vec<String> {
    cmd(
        client,
        E,
        "register-employer",
        json!({"credit_code": code, "name": "武汉某公司", "contact": {"name": "李", "phone": "13900000001"}}),
    )
    .await;
    let mut psns = Vec::new();
    for id in staff {
        let r = cmd(
            client,
            E,
            "enroll-person",
            json!({"id_number": id, "name": "参保人", "phone": "13800000000", "category": "employee",
                   "employer_credit_code": code, "insurance_types": ["employee_medical"], "effective_month": "2024-03"}),
        )
        .await;
        psns.push(r["person_id"].as_str().expect("a person_id").to_owned());
    }
    let sql = format!("select count(*) from coverage where employer_credit_code = '{code}'");
    wait_for("collection's projection of the enrollments", WAIT, || async {
        (count(env, C, &sql).await == staff.len() as i64).then_some(())
    })
    .await;
    for id in staff {
        cmd(
            client,
            C,
            "declare-wages",
            json!({"employer_credit_code": code, "year": 2024, "wages": [{"id_number": id, "previous_year_average": "5000.00"}]}),
        )
        .await;
    }
    psns
}

async fn assessment_of(env: &TestEnv, payer: &str) -> (String, String) {
    let db = env.pool(C).await.get().await.expect("a connection");
    let r = db
        .query_one(
            "select assessment_id::text, due::text from assessments where payer_id = $1 and month = '2024-03-01'",
            &[&payer],
        )
        .await
        .expect("the employer's assessment");
    (r.get(0), r.get(1))
}

async fn pay(client: &CommandClient, assessment: &str, amount: &str, receipt: &str) {
    cmd(
        client,
        C,
        "record-payment",
        json!({"assessment_id": assessment, "amount": amount, "paid_at": "2024-03-20T10:00:00+08:00",
               "tax_receipt_no": receipt}),
    )
    .await;
}

fn settle_body(msgid: &str, inst: &str, mdtrt: &str, psn: &str, id: &str, medfee: &str) -> Value {
    json!({"msgid": msgid, "fixmedins_code": inst, "mdtrt_id": mdtrt, "psn_no": psn,
           "mdtrt_cert_type": "02", "mdtrt_cert_no": id, "medfee_sumamt": medfee,
           "acct_used_flag": "1", "insutype": "310"})
}

/// A registered outpatient visit of `who` (psn_no, ID number) at `inst` with `lines`
/// uploaded: its mdtrt_id.
async fn visit(client: &CommandClient, msgid: &str, inst: &str, who: (&str, &str), lines: Value) -> String {
    let v = cmd(
        client,
        B,
        "register-visit",
        json!({"msgid": msgid, "fixmedins_code": inst, "psn_no": who.0, "insutype": "310",
               "mdtrt_cert_type": "02", "mdtrt_cert_no": who.1, "ipt_otp_no": format!("N-{msgid}"),
               "begntime": "2024-05-10T09:00:00+08:00", "self_pay": false}),
    )
    .await;
    let mdtrt = v["mdtrt_id"].as_str().expect("a mdtrt_id").to_owned();
    cmd(
        client,
        B,
        "upload-fees",
        json!({"mdtrt_id": mdtrt, "psn_no": who.0, "feedetail": lines}),
    )
    .await;
    mdtrt
}

fn fee(sn: &str, code: &str, cnt: &str, pric: &str, amount: &str) -> Value {
    json!({"feedetl_sn": sn, "med_list_codg": code, "cnt": cnt, "pric": pric,
           "det_item_fee_sumamt": amount, "fee_ocur_time": "2024-05-10 09:30:00"})
}

#[tokio::test]
async fn the_books_the_real_services_leave_reconcile() {
    let env = TestEnv::new();
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings(E),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds");
    let collection = collection::build(collection::Settings {
        service: env.service_settings(C),
        region: "420100".into(),
        schedule: collection::schedule::ScheduleSettings {
            enabled: false,
            ..Default::default()
        },
    })
    .await
    .expect("collection builds");
    let benefits = benefits::build(benefits::Settings {
        service: env.service_settings(B),
    })
    .await
    .expect("benefits builds");
    let card = card_issuance::build(card_issuance::Settings {
        service: env.service_settings("card-issuance"),
    })
    .await
    .expect("card-issuance builds");
    // Notification needs an SMS centre: its books are its migrations only.
    migrated(&env, "notification").await;
    let mut services = Services::new();
    services
        .start(&env, enrollment)
        .start(&env, collection)
        .start(&env, benefits)
        .start(&env, card);
    let client = env.client().await;

    // Three employers: one pays March in full, one half (the rest outstanding), one 1.00 too
    // much; the first's staff are credited their personal-account share.
    let codes: Vec<String> = (0..3).map(|n| credit_code(7600 + n)).collect();
    let (alice_id, bob_id, carol_id, dave_id) =
        (id_number(7601), id_number(7602), id_number(7603), id_number(7604));
    let staff = employer(&client, &env, &codes[0], &[alice_id.clone(), bob_id.clone()]).await;
    employer(&client, &env, &codes[1], std::slice::from_ref(&carol_id)).await;
    employer(&client, &env, &codes[2], std::slice::from_ref(&dave_id)).await;
    cmd(&client, C, "assess-month", json!({"month": "2024-03"})).await;
    let (a0, due0) = assessment_of(&env, &codes[0]).await;
    pay(&client, &a0, &due0, "T-0").await;
    let (a1, due1) = assessment_of(&env, &codes[1]).await;
    let half = format!("{:.2}", due1.parse::<f64>().expect("an amount") / 2.0);
    pay(&client, &a1, &half, "T-1").await;
    let (a2, due2) = assessment_of(&env, &codes[2]).await;
    let more = format!("{:.2}", due2.parse::<f64>().expect("an amount") + 1.0);
    pay(&client, &a2, &more, "T-2").await;
    let (alice, bob) = (staff[0].clone(), staff[1].clone());
    let credited = format!(
        "select count(*) from account_entries where kind = 'credit' and person_id in ('{alice}', '{bob}')"
    );
    wait_for("benefits to credit March's accounts", WAIT, || async {
        (count(&env, B, &credited).await == 2).then_some(())
    })
    .await;

    // Alice settles with her account, cancels, settles again; Bob settles at another hospital.
    let m1 = visit(
        &client,
        "M1",
        H3,
        (&alice, &alice_id),
        json!([
            fee("1", "XA01", "2", "300.00", "600.00"),
            fee("2", "XB01", "1", "500.00", "500.00"),
            fee("3", "XC01", "1", "80.00", "80.00")
        ]),
    )
    .await;
    let s1 = cmd(
        &client,
        B,
        "settle",
        settle_body("S1", H3, &m1, &alice, &alice_id, "1180.00"),
    )
    .await;
    cmd(
        &client,
        B,
        "cancel-settlement",
        json!({"msgid": "C1", "setl_id": s1["setl_id"], "mdtrt_id": m1, "psn_no": alice}),
    )
    .await;
    let s2 = cmd(
        &client,
        B,
        "settle",
        settle_body("S2", H3, &m1, &alice, &alice_id, "1180.00"),
    )
    .await;
    let m2 = visit(
        &client,
        "M2",
        H2,
        (&bob, &bob_id),
        json!([fee("1", "XA01", "1", "200.00", "200.00")]),
    )
    .await;
    let s3 = cmd(
        &client,
        B,
        "settle",
        settle_body("S3", H2, &m2, &bob, &bob_id, "200.00"),
    )
    .await;
    let today = s2["setl_time"].as_str().expect("a settlement time")[..10].to_owned();

    // What 3201 answers, from the service itself.
    let mut answered = Vec::new();
    for inst in [H3, H2] {
        let t = cmd(
            &client,
            B,
            "reconcile-totals",
            json!({"fixmedins_code": inst, "insutype": "310", "stmt_begndate": today, "stmt_enddate": today,
                   "medfee_sumamt": "0", "fund_pay_sumamt": "0", "acct_pay": "0", "fixmedins_setl_cnt": 0}),
        )
        .await;
        answered.push((
            inst.to_owned(),
            t["ours"]["medfee_sumamt"].as_str().expect("medfee").to_owned(),
            t["ours"]["fund_pay_sumamt"].as_str().expect("fund").to_owned(),
            t["ours"]["acct_pay"].as_str().expect("acct").to_owned(),
            t["ours"]["setl_cnt"].as_i64().expect("count"),
        ));
    }

    // Everything drained: every outbox published, then the services stopped.
    let db = admin().await;
    let s = schemas(&env);
    wait_for("every outbox drained", WAIT, || async {
        let checks = reconcile::reconcile(&db, &s).await.ok()?;
        checks
            .iter()
            .filter(|c| c.name.contains("outbox drained"))
            .all(|c| c.ok)
            .then_some(())
    })
    .await;
    services.stop().await;

    let checks = reconcile::reconcile(&db, &s).await.expect("reconcile runs");
    for c in &checks {
        println!("{c}");
    }
    assert_eq!(checks.len(), 14, "{checks:#?}");
    for c in &checks {
        passes(c);
    }
    let collection = find(&checks, "collection:");
    assert!(
        collection
            .detail
            .starts_with("3 assessments (3 payer-months), 3 payments")
            && collection.detail.contains("(1 overpaid)"),
        "{collection}"
    );
    let fund = find(&checks, "benefits: every fund payment");
    assert!(fund.detail.starts_with("3 settlements (2 standing)"), "{fund}");
    let accounts = find(&checks, "benefits: every personal-account");
    // Alice's and Bob's March credits spent on their settlements; Dave's (overpaid) untouched.
    assert!(
        accounts
            .detail
            .starts_with("3 accounts, balance 100.00 = credits 300.00 - debits 300.00 + reversals 100.00"),
        "{accounts}"
    );
    assert!(
        find(&checks, "benefits: no inbox").detail.starts_with(&format!(
            "{} inbox rows",
            count(&env, B, "select count(*) from inbox").await
        )),
        "{checks:#?}"
    );

    // The 3201 figures the check reconciles are the service's own answer.
    let ours: Vec<_> = reconcile::daily_totals(&db, &s.benefits)
        .await
        .expect("3201 totals")
        .into_iter()
        .map(|t| {
            assert_eq!((t.insutype.as_str(), t.day.to_string()), ("310", today.clone()));
            (
                t.fixmedins_code,
                t.medfee_sumamt,
                t.fund_pay_sumamt,
                t.acct_pay,
                t.setl_cnt,
            )
        })
        .collect();
    assert_eq!(ours, answered, "3201 as benefits answers it");
    assert_eq!(
        (answered[0].1.as_str(), answered[0].4),
        (s2["medfee_sumamt"].as_str().expect("medfee"), 1),
        "H3's day is S2 alone (S1 was cancelled)"
    );
    assert_eq!(
        (answered[1].1.as_str(), answered[1].4),
        (s3["medfee_sumamt"].as_str().expect("medfee"), 1)
    );
}

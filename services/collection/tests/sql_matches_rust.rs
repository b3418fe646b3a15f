//! The set-based assessment (SQL) and the domain rules (Rust) agree item by item: every
//! person's items from `assess.rs` equal `domain::assessment::assess` for their category,
//! base and rule, rounding per item included.

mod common;

use collection::domain::assessment::{
    Category, Payer, assess, assess_resident, assess_retiree, employer_share, first_covered_month_of_year,
};
use collection::domain::money::Money;
use contracts::{InsuranceType, Line};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use testkit::TestEnv;
use uuid::Uuid;

#[tokio::test]
async fn sql_assessment_equals_the_rust_rules_for_random_bases() {
    let env = TestEnv::new();
    let app = collection::build(common::collection_settings(&env))
        .await
        .unwrap();
    env.track_queues(app.topology().owned_queues(app.names()));
    let pool = app.pool();
    let mut client = pool.get().await.unwrap();

    // Deterministic pseudo-random bases across the band and beyond (bases are stored as
    // determined, so any fen amount is fair game for the arithmetic).
    let mut seed: u64 = 0x2545F4914F6CDD1D;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let categories = ["employee", "flexible", "retiree", "resident"];
    let types: [(InsuranceType, &[&str]); 6] = [
        (
            InsuranceType::EmployeeMedical,
            &["employee", "flexible", "retiree"],
        ),
        (InsuranceType::LargeAmountMedical, &["employee", "retiree"]),
        (InsuranceType::ResidentMedical, &["resident"]),
        (InsuranceType::Pension, &["employee", "flexible"]),
        (InsuranceType::Unemployment, &["employee"]),
        (InsuranceType::WorkInjury, &["employee"]),
    ];
    let mut expected: BTreeMap<(Uuid, String, String), Decimal> = BTreeMap::new();
    // (employer, type) → (employer rate, employees' bases): the employer's share is rounded
    // once on the sum, with a rounding item (nil person) per employer and type.
    let mut employer_bases: BTreeMap<(String, String), (Decimal, Vec<Money>)> = BTreeMap::new();
    let rules = collection::rules::current(&client, "420100", None).await.unwrap();
    let month = contracts::ids::YearMonth::parse("2024-03").unwrap();
    let tx = client.transaction().await.unwrap();
    let mut premiums = 0;
    for n in 0..600u32 {
        let person = Uuid::now_v7();
        let category = categories[(next() % 4) as usize];
        // Half the retirees have not met the minimum contribution years.
        let years_met = category != "retiree" || next() % 2 == 0;
        tx.execute(
            "insert into persons (person_id, id_number, category, minimum_years_met) values ($1, $2, $3, $4)",
            &[&person, &testkit::id_number(n), &category, &years_met],
        )
        .await
        .unwrap();
        for (t, allowed) in &types {
            if !allowed.contains(&category) || next() % 3 == 0 {
                continue;
            }
            let employer = (category == "employee").then(|| format!("E{}", n % 17));
            // Some residents are covered from the month assessed (their yearly premium is
            // charged in it), the others from January (charged then, not in March).
            let from = if category == "resident" && next() % 2 == 0 {
                month
            } else {
                contracts::ids::YearMonth::parse("2024-01").unwrap()
            };
            tx.execute(
                "insert into coverage (person_id, insurance_type, line, category, employer_credit_code, from_month)
                 values ($1, $2, $3, $4, $5, $6)",
                &[&person, &t.as_str(), &t.line().as_str(), &category, &employer, &from.first_day()],
            )
            .await
            .unwrap();
            let Some((_, rule)) = rules
                .iter()
                .find(|(_, r)| r.insurance_type == *t && r.contains(month))
            else {
                continue;
            };
            // Employees and some flexible workers have a stored base; the others use the standard base.
            let stored = (category == "employee" || (category == "flexible" && next() % 2 == 0))
                .then(|| Money::from_fen((next() % 3_000_000) as i64 + 1));
            if let Some(base) = stored {
                tx.execute(
                    "insert into bases (person_id, insurance_type, year, base, source, clamp) values ($1, $2, 2024, $3, 'test', 'none')",
                    &[&person, &t.as_str(), &base.amount()],
                )
                .await
                .unwrap();
            }
            let cat = match category {
                "employee" => Category::Employee,
                "flexible" => Category::Flexible,
                "retiree" => Category::Retiree,
                _ => Category::Resident,
            };
            let base = stored.unwrap_or_else(|| Money::round_fen(rule.standard_base));
            if let Some(code) = &employer {
                employer_bases
                    .entry((code.clone(), t.as_str().to_owned()))
                    .or_insert_with(|| (rule.employer_rate, Vec::new()))
                    .1
                    .push(base);
            }
            let items = match cat {
                Category::Retiree => assess_retiree(years_met, base, rule),
                Category::Resident => {
                    assess_resident(first_covered_month_of_year(&[(from, None)], month), base, rule)
                }
                _ => assess(cat, base, rule),
            };
            if cat == Category::Resident && rule.yearly_premium.is_some() && !items.is_empty() {
                premiums += 1;
            }
            for item in items {
                let share = match item.payer {
                    Payer::Employer => "employer",
                    Payer::Employee => "employee",
                    Payer::Person => "person",
                };
                *expected
                    .entry((person, t.as_str().to_owned(), share.to_owned()))
                    .or_default() += item.amount.amount();
            }
        }
    }
    for ((_, t), (rate, bases)) in &employer_bases {
        let share = employer_share(bases, *rate);
        *expected
            .entry((
                collection::assess::ROUNDING_PERSON,
                t.clone(),
                "rounding".to_owned(),
            ))
            .or_default() += share.rounding.amount();
    }
    assert!(
        employer_bases
            .values()
            .any(|(rate, b)| !employer_share(b, *rate).rounding.is_zero()),
        "the sample has employers whose once-rounded share differs from the per-person sum"
    );
    assert!(
        premiums > 10,
        "the sample has residents charged their yearly premium ({premiums})"
    );
    let envelope = messaging::Envelope {
        message_id: Uuid::now_v7(),
        correlation_id: None,
        reply_to: None,
        message_type: None,
        timestamp: None,
        app_id: None,
        channel: None,
        operator: None,
        headers: Default::default(),
    };
    let d = chrono::NaiveDate::from_ymd_opt(2024, 4, 20).unwrap();
    for line in Line::BUSINESS {
        let run = collection::assess::Run {
            region: "420100",
            line,
            month: month.first_day(),
            employer_deadline: d,
            debit_deadline: d,
            person_deadline: d,
            plain: collection::assess::PlainDeadlines {
                employer: d,
                debit: d,
                person: d,
            },
        };
        collection::assess::run(&tx, app.names(), &run, &envelope)
            .await
            .unwrap();
    }
    let rows = tx
        .query(
            "select person_id, insurance_type, share, sum(amount) from assessment_items group by 1, 2, 3",
            &[],
        )
        .await
        .unwrap();
    let actual: BTreeMap<(Uuid, String, String), Decimal> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
        .filter(|(_, a): &(_, Decimal)| !a.is_zero())
        .collect();
    expected.retain(|_, v| !v.is_zero());
    assert!(
        expected.len() > 500,
        "a meaningful sample ({} items)",
        expected.len()
    );
    let differing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k) != Some(*v))
        .take(5)
        .collect();
    assert!(differing.is_empty(), "SQL and Rust disagree, e.g. {differing:?}");
    assert_eq!(
        actual.len(),
        expected.len(),
        "SQL produced items the rules do not"
    );
    // The outbox got one event per payer, and every event's amount is the sum of its items.
    let bad: i64 = tx
        .query_one(
            "select count(*) from outbox o join assessments a on a.assessment_id = (o.body->>'assessment_id')::uuid
             where (o.body->>'amount')::numeric <> a.due",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
    tx.rollback().await.unwrap();
}

/// A rule in use only from a later month (Hangzhou 2020, `in_use_from: 2020-07`): before it
/// is in use the SQL takes the standard base of the rule before it, as `rules::applied` does
/// in Rust, and its own once `policy_in_use` records it.
#[tokio::test]
async fn sql_takes_the_figures_in_use_as_the_rust_rules_do() {
    let env = TestEnv::new();
    let app = collection::build(collection::Settings {
        region: "330100".into(),
        ..common::collection_settings(&env)
    })
    .await
    .unwrap();
    env.track_queues(app.topology().owned_queues(app.names()));
    let mut client = app.pool().get().await.unwrap();
    let policy = collection::rules::current(&client, "330100", Some(Line::Medical))
        .await
        .unwrap();
    let month = contracts::ids::YearMonth::parse("2020-03").unwrap();
    let (_, rule) = policy
        .iter()
        .find(|(_, r)| r.insurance_type == InsuranceType::EmployeeMedical && r.contains(month))
        .expect("Hangzhou 2020 employee medical");
    assert!(rule.in_use_from.is_some());
    let tx = client.transaction().await.unwrap();
    let flexible: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for (n, person) in flexible.iter().enumerate() {
        tx.execute(
            "insert into persons (person_id, id_number, category) values ($1, $2, 'flexible')",
            &[person, &testkit::id_number(n as u32)],
        )
        .await
        .unwrap();
        tx.execute(
            "insert into coverage (person_id, insurance_type, line, category, from_month)
             values ($1, 'employee_medical', 'medical', 'flexible', '2020-01-01')",
            &[person],
        )
        .await
        .unwrap();
    }
    let envelope = messaging::Envelope {
        message_id: Uuid::now_v7(),
        correlation_id: None,
        reply_to: None,
        message_type: None,
        timestamp: None,
        app_id: None,
        channel: None,
        operator: None,
        headers: Default::default(),
    };
    let d = chrono::NaiveDate::from_ymd_opt(2020, 4, 15).unwrap();
    let run = collection::assess::Run {
        region: "330100",
        line: Line::Medical,
        month: month.first_day(),
        employer_deadline: d,
        debit_deadline: d,
        person_deadline: d,
        plain: collection::assess::PlainDeadlines {
            employer: d,
            debit: d,
            person: d,
        },
    };
    let expected = |in_use: &std::collections::HashSet<(String, contracts::ids::YearMonth)>| {
        let applied = collection::rules::applied(&policy, in_use, rule);
        let items = assess(
            Category::Flexible,
            Money::round_fen(applied.standard_base),
            &applied,
        );
        items.iter().map(|i| i.amount.amount()).sum::<Decimal>() * Decimal::from(flexible.len())
    };
    let mut in_use = std::collections::HashSet::new();
    collection::assess::run(&tx, app.names(), &run, &envelope)
        .await
        .unwrap();
    let before = total_due(&tx).await;
    assert_eq!(before, expected(&in_use), "on the 2019 standard base");
    assert_eq!(
        before,
        "1660.80".parse::<Decimal>().unwrap(),
        "5 × 6 % of 5536.00"
    );

    tx.execute(
        "insert into policy_in_use (region, insurance_type, effective_from, in_use_from, message_id)
         values ('330100', 'employee_medical', '2020-01-01', '2020-07-01', $1)",
        &[&envelope.message_id],
    )
    .await
    .unwrap();
    in_use.insert(("employee_medical".to_owned(), rule.effective_from));
    let again = messaging::Envelope {
        message_id: Uuid::now_v7(),
        ..envelope
    };
    collection::assess::run(&tx, app.names(), &run, &again)
        .await
        .unwrap();
    let after = total_due(&tx).await;
    assert_eq!(after, expected(&in_use), "on the 2020 standard base");
    assert_eq!(after, "1788.10".parse::<Decimal>().unwrap(), "5 × 357.62");
    tx.rollback().await.unwrap();
}

async fn total_due(tx: &deadpool_postgres::Transaction<'_>) -> Decimal {
    tx.query_one("select sum(amount) from assessment_items", &[])
        .await
        .unwrap()
        .get(0)
}

//! Daily reconciliation 对账 with an institution (3201 totals, 3202 details) per
//! institution, settlement day and insurance type, and the service-wide check that what the
//! settlements say the accounts paid is what the ledger debited. `acct_pay` in 3201 / 3202 is
//! the person's own account; mutual aid (`acct_mulaid_pay`) is reported on its own.

use crate::domain::money::text;
use crate::handlers::{HResult, date, insutype, invalid, money, ok};
use contracts::benefits::commands as c;
use deadpool_postgres::Transaction;
use messaging::{HandlerError, Incoming};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

fn period(begn: &str, end: &str) -> Result<(chrono::NaiveDate, chrono::NaiveDate), HandlerError> {
    let (b, e) = (date("stmt_begndate", begn)?, date("stmt_enddate", end)?);
    if e < b {
        return Err(invalid("stmt_enddate", "before stmt_begndate"));
    }
    Ok((b, e))
}

pub async fn totals(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::ReconcileTotals = msg.decode()?;
    insutype("insutype", &cmd.insutype)?;
    let (b, e) = period(&cmd.stmt_begndate, &cmd.stmt_enddate)?;
    let theirs = (
        money("medfee_sumamt", &cmd.medfee_sumamt)?,
        money("fund_pay_sumamt", &cmd.fund_pay_sumamt)?,
        money("acct_pay", &cmd.acct_pay)?,
        cmd.fixmedins_setl_cnt,
    );
    let r = tx
        .query_one(
            "select coalesce(sum(medfee_sumamt), 0)::numeric(14, 2), coalesce(sum(fund_pay_sumamt), 0)::numeric(14, 2),
                    coalesce(sum(acct_pay), 0)::numeric(14, 2), count(*)
             from settlements
             where fixmedins_code = $1 and insutype = $2 and setl_date between $3 and $4 and status = 'settled'",
            &[&cmd.fixmedins_code, &cmd.insutype, &b, &e],
        )
        .await?;
    let ours: (Decimal, Decimal, Decimal, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    let mut differences = Vec::new();
    for (field, t, o) in [
        ("medfee_sumamt", theirs.0, ours.0),
        ("fund_pay_sumamt", theirs.1, ours.1),
        ("acct_pay", theirs.2, ours.2),
    ] {
        if t != o {
            differences.push(c::Difference {
                field: field.into(),
                theirs: text(t),
                ours: text(o),
            });
        }
    }
    if theirs.3 != ours.3 {
        differences.push(c::Difference {
            field: "fixmedins_setl_cnt".into(),
            theirs: theirs.3.to_string(),
            ours: ours.3.to_string(),
        });
    }
    let balanced = differences.is_empty();
    ok(
        &c::ReconcileTotalsResult {
            stmt_rslt: if balanced { "0" } else { "1" }.into(),
            stmt_rslt_dscr: if balanced {
                "balanced".into()
            } else {
                format!("{} figure(s) differ", differences.len())
            },
            ours: c::Totals {
                medfee_sumamt: text(ours.0),
                fund_pay_sumamt: text(ours.1),
                acct_pay: text(ours.2),
                setl_cnt: ours.3,
            },
            differences,
        },
        vec![],
    )
}

pub async fn details(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::ReconcileDetails = msg.decode()?;
    insutype("insutype", &cmd.insutype)?;
    let (b, e) = period(&cmd.stmt_begndate, &cmd.stmt_enddate)?;
    let rows = tx
        .query(
            "select setl_id::text, medfee_sumamt, fund_pay_sumamt, acct_pay, status
             from settlements where fixmedins_code = $1 and insutype = $2 and setl_date between $3 and $4",
            &[&cmd.fixmedins_code, &cmd.insutype, &b, &e],
        )
        .await?;
    let mut ours: BTreeMap<String, c::DetailLine> = rows
        .iter()
        .map(|r| {
            let id: String = r.get(0);
            let line = c::DetailLine {
                setl_id: id.clone(),
                medfee_sumamt: text(r.get(1)),
                fund_pay_sumamt: text(r.get(2)),
                acct_pay: text(r.get(3)),
                refd_setl_flag: if r.get::<_, String>(4) == "cancelled" {
                    "1"
                } else {
                    "0"
                }
                .into(),
            };
            (id, line)
        })
        .collect();
    let mut differences = Vec::new();
    for (i, theirs) in cmd.details.iter().enumerate() {
        // Amounts compared as numbers, so "10" and "10.00" agree.
        let norm = |field: &str, s: &str| money(&format!("details[{i}].{field}"), s).map(text);
        let t = c::DetailLine {
            setl_id: theirs.setl_id.clone(),
            medfee_sumamt: norm("medfee_sumamt", &theirs.medfee_sumamt)?,
            fund_pay_sumamt: norm("fund_pay_sumamt", &theirs.fund_pay_sumamt)?,
            acct_pay: norm("acct_pay", &theirs.acct_pay)?,
            refd_setl_flag: theirs.refd_setl_flag.clone(),
        };
        let kind = match ours.remove(&theirs.setl_id) {
            None => Some(("missing-here", None)),
            Some(o) if o.refd_setl_flag != t.refd_setl_flag => Some(("status-differs", Some(o))),
            Some(o) if o != t => Some(("amounts-differ", Some(o))),
            Some(_) => None,
        };
        if let Some((kind, o)) = kind {
            differences.push(c::DetailDifference {
                setl_id: theirs.setl_id.clone(),
                kind: kind.into(),
                theirs: Some(t),
                ours: o,
            });
        }
    }
    for (id, o) in ours {
        differences.push(c::DetailDifference {
            setl_id: id,
            kind: "missing-there".into(),
            theirs: None,
            ours: Some(o),
        });
    }
    ok(
        &c::ReconcileDetailsResult {
            stmt_rslt: if differences.is_empty() { "0" } else { "1" }.into(),
            checked: cmd.details.len() as i64,
            differences,
        },
        vec![],
    )
}

pub async fn service(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let _: c::ReconcileService = msg.decode()?;
    let rows = tx
        .query(
            "with s as (
                 select insutype, count(*) filter (where status = 'settled') as n,
                        coalesce(sum(medfee_sumamt) filter (where status = 'settled'), 0) as medfee,
                        coalesce(sum(fund_pay_sumamt) filter (where status = 'settled'), 0) as fund,
                        coalesce(sum(acct_pay + acct_mulaid_pay) filter (where status = 'settled'), 0) as acct
                 from settlements group by insutype),
             l as (
                 select st.insutype, coalesce(-sum(e.amount), 0) as debits
                 from account_entries e join settlements st on st.setl_id = e.setl_id
                 group by st.insutype)
             select s.insutype, s.n, s.medfee::numeric(14, 2), s.fund::numeric(14, 2), s.acct::numeric(14, 2),
                    coalesce(l.debits, 0)::numeric(14, 2)
             from s left join l on l.insutype = s.insutype order by s.insutype",
            &[],
        )
        .await?;
    let per_insutype: Vec<c::ServiceTotals> = rows
        .iter()
        .map(|r| {
            let (acct, debits): (Decimal, Decimal) = (r.get(4), r.get(5));
            c::ServiceTotals {
                insutype: r.get(0),
                settlements: r.get(1),
                medfee_sumamt: text(r.get(2)),
                fund_pay_sumamt: text(r.get(3)),
                acct_paid: text(acct),
                ledger_debits: text(debits),
                balanced: acct == debits,
            }
        })
        .collect();
    ok(
        &c::ReconcileServiceResult {
            balanced: per_insutype.iter().all(|t| t.balanced),
            per_insutype,
        },
        vec![],
    )
}

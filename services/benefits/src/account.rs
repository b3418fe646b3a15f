//! The personal account 个人账户: balance and statement from the ledger, and family mutual
//! aid 家庭共济 (a person lets relatives draw on their account).

use crate::domain::money::text;
use crate::handlers::{HResult, conflict, invalid, not_found, ok, uuid};
use crate::store;
use contracts::benefits::commands as c;
use deadpool_postgres::Transaction;
use messaging::{HandlerError, Incoming};
use rust_decimal::Decimal;
use uuid::Uuid;

async fn known(tx: &Transaction<'_>, field: &str, psn_no: &str) -> Result<Uuid, HandlerError> {
    let id = uuid(field, psn_no)?;
    store::person_by_id(tx, id)
        .await?
        .map(|p| p.person_id)
        .ok_or_else(|| not_found(field, "no insured person with this psn_no"))
}

/// `authorise-mutual-aid` (`grant` true) and `revoke-mutual-aid`.
pub async fn authorise(tx: &Transaction<'_>, msg: &Incoming, grant: bool) -> HResult {
    let cmd: c::AuthoriseMutualAid = msg.decode()?;
    let grantor = known(tx, "psn_no", &cmd.psn_no).await?;
    let relative = known(tx, "relative_psn_no", &cmd.relative_psn_no).await?;
    if grantor == relative {
        return Err(invalid(
            "relative_psn_no",
            "a person does not authorise themselves",
        ));
    }
    if grant {
        tx.execute(
            "insert into mutual_aid (grantor, relative, relation) values ($1, $2, $3)
             on conflict (grantor, relative) do update set relation = $3,
                 authorised_at = case when mutual_aid.revoked_at is null then mutual_aid.authorised_at else now() end,
                 revoked_at = null",
            &[&grantor, &relative, &cmd.relation],
        )
        .await?;
    } else {
        let n = tx
            .execute(
                "update mutual_aid set revoked_at = now() where grantor = $1 and relative = $2 and revoked_at is null",
                &[&grantor, &relative],
            )
            .await?;
        if n == 0
            && tx
                .query_opt(
                    "select 1 from mutual_aid where grantor = $1 and relative = $2",
                    &[&grantor, &relative],
                )
                .await?
                .is_none()
        {
            return Err(conflict("relative_psn_no", "no authorisation to revoke"));
        }
    }
    ok(
        &c::MutualAidResult {
            psn_no: cmd.psn_no,
            relative_psn_no: cmd.relative_psn_no,
            authorised: grant,
        },
        vec![],
    )
}

pub async fn balance(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::AccountQuery = msg.decode()?;
    let person = known(tx, "psn_no", &cmd.psn_no).await?;
    ok(
        &c::AccountBalance {
            psn_no: cmd.psn_no,
            balc: text(store::balance(tx, person).await?),
        },
        vec![],
    )
}

pub async fn statement(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: c::AccountQuery = msg.decode()?;
    let person = known(tx, "psn_no", &cmd.psn_no).await?;
    let rows = tx
        .query(
            "select entry_id, kind, amount, reference, booked_at,
                    sum(amount) over (order by entry_id)::numeric(14, 2)
             from account_entries where person_id = $1 order by entry_id",
            &[&person],
        )
        .await?;
    let cst = crate::handlers::cst();
    let entries: Vec<c::AccountEntry> = rows
        .iter()
        .map(|r| c::AccountEntry {
            entry_id: r.get(0),
            kind: r.get(1),
            amount: text(r.get(2)),
            reference: r.get(3),
            booked_at: r.get::<_, chrono::DateTime<chrono::Utc>>(4).with_timezone(&cst),
            balc: text(r.get(5)),
        })
        .collect();
    let balc: Decimal = rows.last().map(|r| r.get(5)).unwrap_or_default();
    ok(
        &c::AccountStatement {
            psn_no: cmd.psn_no,
            balc: text(balc),
            entries,
        },
        vec![],
    )
}

//! What each event means for whom: the contacts projection (from enrollment's events) and
//! the messages decided from the templates, in the consumer's transaction, so a redelivered
//! event decides nothing twice. Two commands: opting out, and listing what was sent.

use crate::store::{self, Queued};
use crate::templates::Templates;
use crate::{NotifySettings, quiet};
use async_trait::async_trait;
use chrono::{DateTime, Duration as Days, FixedOffset, NaiveTime, TimeZone, Utc};
use contracts::benefits::events as be;
use contracts::collection::events as ce;
use contracts::enrollment::events as ee;
use contracts::notification::{self as n, SERVICE};
use contracts::{ErrorBody, ErrorCode, InsuranceType, Line, MessageKind};
use deadpool_postgres::Transaction;
use messaging::{Handled, Handler, HandlerError, Incoming};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct NotificationHandler {
    pub templates: Arc<Templates>,
    pub notify: NotifySettings,
}

type HResult = Result<Handled, HandlerError>;

fn reject(field: &str, code: ErrorCode, message: impl Into<String>) -> HandlerError {
    HandlerError::Rejected(ErrorBody::new(code, message).with_field(field))
}

/// The events it reads, per line: the business lines' enrollment, collection and benefits
/// events, the card's on the common line, and every line's outcomes of held requests. The
/// benefits service publishes settlements, claims and filings on the medical line and the
/// social-line benefits (retirement, awards, payments) on the social line.
///
/// Events that concern a person and are deliberately not read (README "What it sends"):
/// collection's `contribution-settled` (the `payment-recorded` that settled the month said
/// it), `batch-debit-requested` (to the bank; the person hears the outcome), benefits'
/// `account-debited` of a person's own settlement (the `settlement-completed` text names the
/// account's share) and `claim-payment-ordered` (to the bank), the card's intermediate steps
/// and requests to the bank, and `card-cancelled` (it follows a termination for death or
/// emigration).
pub fn bindings(line: Line) -> Vec<String> {
    let keys: Vec<&str> = match line {
        Line::Common => [CARD, HELD].concat(),
        Line::Medical => [BUSINESS, MEDICAL_BENEFITS, HELD].concat(),
        Line::Social => [BUSINESS, SOCIAL_BENEFITS, HELD].concat(),
    };
    keys.iter().map(|k| format!("{line}.{k}")).collect()
}

/// Enrollment's and collection's events, the same on both business lines.
const BUSINESS: &[&str] = &[
    "enrollment.person-enrolled",
    "enrollment.staff-added",
    "enrollment.staff-removed",
    "enrollment.employer-registered",
    "enrollment.contact-changed",
    "enrollment.transferred-in",
    "enrollment.enrollment-suspended",
    "enrollment.enrollment-terminated",
    "enrollment.transferred-out",
    "collection.base-determined",
    "collection.contribution-assessed",
    "collection.payment-recorded",
    "collection.overpayment-detected",
    "collection.arrears-detected",
    "collection.arrears-cleared",
    "collection.debit-failed",
];

const MEDICAL_BENEFITS: &[&str] = &[
    "benefits.settlement-completed",
    "benefits.settlement-cancelled",
    "benefits.account-debited",
    "benefits.claim-status-changed",
    "benefits.filing-recorded",
    "benefits.filing-approved",
    "benefits.filing-rejected",
    "benefits.filing-revoked",
];

const SOCIAL_BENEFITS: &[&str] = &[
    "benefits.settlement-completed",
    "benefits.claim-status-changed",
    "benefits.retirement-applied",
    "benefits.retirement-approved",
    "benefits.retirement-rejected",
    "benefits.benefit-awarded",
    "benefits.benefit-payment-batch-ordered",
    "benefits.benefit-payment-failed",
    "benefits.benefit-payments-recorded",
];

const CARD: &[&str] = &[
    "card-issuance.card-arrived",
    "card-issuance.photo-rejected",
    "card-issuance.bank-account-failed",
    "card-issuance.card-production-failed",
    "card-issuance.card-data-error-reported",
    "card-issuance.card-activated",
    "card-issuance.card-loss-reported",
    "card-issuance.card-loss-lifted",
    "card-issuance.card-replaced",
    "card-issuance.card-renewed",
];

/// Every line's outcomes of requests held during a freeze.
const HELD: &[&str] = &["*.deferred-request-processed"];

pub(crate) fn cst() -> FixedOffset {
    contracts::freeze::cst()
}

pub(crate) fn types_zh(types: &[InsuranceType]) -> String {
    let zh: Vec<&str> = types
        .iter()
        .map(|t| match t {
            InsuranceType::EmployeeMedical => "职工基本医疗保险",
            InsuranceType::ResidentMedical => "城乡居民基本医疗保险",
            InsuranceType::LargeAmountMedical => "大额医疗保险",
            InsuranceType::Pension => "基本养老保险",
            InsuranceType::Unemployment => "失业保险",
            InsuranceType::WorkInjury => "工伤保险",
        })
        .collect();
    zh.join("、")
}

/// The Chinese name of a command, for the outcome of a request held during a freeze.
fn command_zh(name: &str) -> &str {
    match name {
        "enroll-person" => "个人参保登记",
        "register-employer" => "单位参保登记",
        "add-staff" => "职工增员",
        "remove-staff" => "职工减员",
        "change-contact" => "信息变更",
        "transfer-in" => "关系转入",
        "transfer-out" => "关系转出",
        "suspend" => "暂停参保",
        "terminate" => "终止参保",
        "record-payment" => "缴费",
        "declare-base" => "缴费基数申报",
        "apply-card" => "社保卡申领",
        "report-loss" => "社保卡挂失",
        "replace-card" => "社保卡补换",
        other => other,
    }
}

pub(crate) fn text(v: &Value, field: &str) -> String {
    match v.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub(crate) fn day(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// A reference as an SMS gives it: its last 8 characters, upper case (a claim, a filing, an
/// application).
pub(crate) fn short_ref(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let short: String = chars[chars.len().saturating_sub(8)..].iter().collect();
    short.to_ascii_uppercase()
}

/// The Chinese of a reason that gives it in both languages (`未达到法定退休年龄：… (the
/// legal retirement age …)`): the part before the English in brackets.
pub(crate) fn zh_reason(reason: &str) -> String {
    let reason = reason.trim();
    match reason.find(" (") {
        Some(i)
            if reason[..i]
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) =>
        {
            reason[..i].trim_end_matches(['。', '.']).to_owned()
        }
        _ => reason.trim_end_matches(['。', '.']).to_owned(),
    }
}

/// A termination whose reason is a death: nobody is told (the card service cancels the card
/// on it too).
fn is_death(reason: &str) -> bool {
    let r = reason.to_lowercase();
    r.contains("死亡") || r.contains("death") || r.contains("deceased")
}

impl NotificationHandler {
    pub(crate) fn signature(&self, line: Line) -> (&str, &str) {
        match line {
            Line::Medical => (&self.notify.signature_medical, &self.notify.hotline_medical),
            _ => (&self.notify.signature_social, &self.notify.hotline_social),
        }
    }

    /// Renders `template` for `recipient` and queues it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn tell(
        &self,
        tx: &Transaction<'_>,
        recipient: &str,
        line: Line,
        template: &str,
        mut vars: BTreeMap<&'static str, String>,
        source: &str,
        not_before: DateTime<Utc>,
    ) -> Result<bool, HandlerError> {
        let (signature, hotline) = self.signature(line);
        vars.insert("signature", signature.to_owned());
        vars.insert("hotline", hotline.to_owned());
        let r = self
            .templates
            .render(template, &vars)
            .map_err(|e| HandlerError::Permanent(anyhow::anyhow!("{e}")))?;
        let not_before = if r.category == "reminder" {
            quiet::outside(
                not_before,
                self.notify.quiet_start_hour,
                self.notify.quiet_end_hour,
            )
        } else {
            not_before
        };
        let q = Queued {
            recipient: recipient.to_owned(),
            line: line.as_str().to_owned(),
            category: r.category,
            template: r.template,
            version: r.version,
            text: r.text,
            source: source.to_owned(),
            not_before,
        };
        Ok(store::queue(tx, &q).await?)
    }

    pub(crate) async fn person_by_id(
        &self,
        tx: &Transaction<'_>,
        person_id: &str,
    ) -> Result<Option<String>, HandlerError> {
        Ok(store::person_by_id(tx, person_id).await?)
    }

    /// The recipient of a payer: an employer by credit code, a person by enrollment id.
    pub(crate) async fn payer(
        &self,
        tx: &Transaction<'_>,
        kind: &str,
        id: &str,
    ) -> Result<Option<String>, HandlerError> {
        if kind == "employer" {
            Ok(Some(format!("employer:{id}")))
        } else {
            self.person_by_id(tx, id).await
        }
    }

    async fn on_event(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let source = msg.envelope.message_id.to_string();
        let version = msg.envelope.message_id;
        let at = msg.received_at;
        let line = msg.line;
        let l = line.as_str();
        let names = |types: &[InsuranceType]| types.iter().map(|t| t.as_str()).collect::<Vec<_>>();
        match (msg.service.as_str(), msg.name.as_str()) {
            ("enrollment", "person-enrolled") => {
                let ev: ee::PersonEnrolled = msg.decode()?;
                let r = format!("person:{}", ev.id_number);
                store::upsert_contact(
                    tx,
                    &r,
                    Some(&ev.person_id),
                    Some(&ev.name),
                    ev.phone.as_deref(),
                    version,
                )
                .await?;
                store::hold_types(tx, &r, l, &names(&ev.insurance_types), true, version).await?;
                let vars = BTreeMap::from([
                    ("name", ev.name.clone()),
                    ("types", types_zh(&ev.insurance_types)),
                    ("month", ev.effective_month.clone()),
                ]);
                self.tell(tx, &r, line, "person-enrolled", vars, &source, at)
                    .await?;
            }
            ("enrollment", "staff-added") => {
                let ev: ee::StaffAdded = msg.decode()?;
                let employer = store::name(tx, &format!("employer:{}", ev.employer_credit_code))
                    .await?
                    .unwrap_or_else(|| ev.employer_credit_code.clone());
                for p in &ev.persons {
                    let r = format!("person:{}", p.id_number);
                    store::upsert_contact(tx, &r, Some(&p.person_id), None, p.phone.as_deref(), version)
                        .await?;
                    store::hold_types(tx, &r, l, &names(&ev.insurance_types), true, version).await?;
                    let vars = BTreeMap::from([
                        ("employer", employer.clone()),
                        ("types", types_zh(&ev.insurance_types)),
                        ("month", ev.month.clone()),
                    ]);
                    self.tell(tx, &r, line, "staff-added", vars, &source, at).await?;
                }
            }
            ("enrollment", "staff-removed") => {
                // Removed by the employer: the person stays insured (suspended) and is told.
                let ev: ee::StaffRemoved = msg.decode()?;
                let employer = store::name(tx, &format!("employer:{}", ev.employer_credit_code))
                    .await?
                    .unwrap_or_else(|| ev.employer_credit_code.clone());
                for p in &ev.persons {
                    let r = format!("person:{}", p.id_number);
                    store::upsert_contact(tx, &r, Some(&p.person_id), None, p.phone.as_deref(), version)
                        .await?;
                    let vars = BTreeMap::from([
                        ("employer", employer.clone()),
                        ("types", types_zh(&ev.insurance_types)),
                        ("month", ev.month.clone()),
                    ]);
                    self.tell(tx, &r, line, "staff-removed", vars, &source, at)
                        .await?;
                }
            }
            ("enrollment", "enrollment-suspended") => {
                let ev: ee::EnrollmentSuspended = msg.decode()?;
                let r = format!("person:{}", ev.0.id_number);
                let vars = BTreeMap::from([
                    ("types", types_zh(&ev.0.insurance_types)),
                    ("month", ev.0.month.clone()),
                    ("reason", zh_reason(&ev.0.reason)),
                ]);
                self.tell(tx, &r, line, "enrollment-suspended", vars, &source, at)
                    .await?;
            }
            ("enrollment", "employer-registered") => {
                let ev: ee::EmployerRegistered = msg.decode()?;
                let r = format!("employer:{}", ev.credit_code);
                store::upsert_contact(tx, &r, None, Some(&ev.name), ev.contact_phone.as_deref(), version)
                    .await?;
                store::hold_types(tx, &r, l, &[store::ON_LINE], true, version).await?;
                let vars =
                    BTreeMap::from([("name", ev.name.clone()), ("credit_code", ev.credit_code.clone())]);
                self.tell(tx, &r, line, "employer-registered", vars, &source, at)
                    .await?;
            }
            ("enrollment", "contact-changed") => {
                let ev: ee::ContactChanged = msg.decode()?;
                let r = format!("person:{}", ev.id_number);
                let phone = ev
                    .changed
                    .iter()
                    .any(|c| c == "phone")
                    .then_some(ev.phone.as_str());
                // A contact change names the line it was made on, but enrolls on nothing: after a
                // termination it does not bring the line back.
                store::upsert_contact(tx, &r, Some(&ev.person_id), Some(&ev.name), phone, version).await?;
                // Enrollment publishes one change on every line the person is on: it is told once,
                // from the first of the person's lines (medical before social), to the number in
                // force after it; the key is the command's correlation, shared by those events.
                let lines = store::lines(tx, &r).await?;
                let first = lines.iter().min().cloned();
                if first.is_none_or(|f| f.as_str() == l) {
                    let fields: Vec<&str> = ev
                        .changed
                        .iter()
                        .map(|c| match c.as_str() {
                            "name" => "姓名",
                            "phone" => "手机号码",
                            "bank_account" => "银行账户",
                            other => other,
                        })
                        .collect();
                    let vars = BTreeMap::from([("name", ev.name.clone()), ("fields", fields.join("、"))]);
                    let once = format!("change:{}", msg.envelope.correlation());
                    self.tell(tx, &r, line, "contact-changed", vars, &once, at)
                        .await?;
                }
            }
            ("enrollment", "enrollment-terminated") => {
                // The types named end on this line; the line stays while another is held.
                // Suspensions (and staff removals, which suspend) keep the line: the person is
                // still insured there.
                let ev: ee::EnrollmentTerminated = msg.decode()?;
                let r = format!("person:{}", ev.0.id_number);
                store::hold_types(tx, &r, l, &names(&ev.0.insurance_types), false, version).await?;
                if !is_death(&ev.0.reason) {
                    let vars = BTreeMap::from([
                        ("types", types_zh(&ev.0.insurance_types)),
                        ("month", ev.0.month.clone()),
                        ("reason", zh_reason(&ev.0.reason)),
                    ]);
                    self.tell(tx, &r, line, "enrollment-terminated", vars, &source, at)
                        .await?;
                }
            }
            ("enrollment", "transferred-out") => {
                // Enrollment terminates the types transferred out of the city.
                let ev: ee::TransferredOut = msg.decode()?;
                let r = format!("person:{}", ev.certificate.id_number);
                store::hold_types(tx, &r, l, &names(&ev.certificate.insurance_types), false, version).await?;
                let vars = BTreeMap::from([
                    ("types", types_zh(&ev.certificate.insurance_types)),
                    ("to_region", ev.certificate.to_region.clone()),
                    ("certificate", ev.certificate.certificate_id.clone()),
                ]);
                self.tell(tx, &r, line, "transferred-out", vars, &source, at)
                    .await?;
            }
            ("enrollment", "transferred-in") => {
                let ev: ee::TransferredIn = msg.decode()?;
                let r = format!("person:{}", ev.id_number);
                store::upsert_contact(tx, &r, Some(&ev.person_id), None, None, version).await?;
                store::hold_types(tx, &r, l, &names(&ev.insurance_types), true, version).await?;
                let vars = BTreeMap::from([
                    ("types", types_zh(&ev.insurance_types)),
                    ("from_region", ev.from_region.clone()),
                    ("month", ev.effective_month.clone()),
                ]);
                self.tell(tx, &r, line, "transferred-in", vars, &source, at)
                    .await?;
            }
            ("collection", "base-determined") => {
                let ev: ce::BaseDetermined = msg.decode()?;
                let r = format!("person:{}", ev.id_number);
                let bases: Vec<String> = ev
                    .bases
                    .iter()
                    .map(|b| format!("{}{}元", types_zh(&[b.insurance_type]), b.base))
                    .collect();
                let vars = BTreeMap::from([("year", ev.year.to_string()), ("bases", bases.join("、"))]);
                self.tell(tx, &r, line, "base-determined", vars, &source, at)
                    .await?;
            }
            ("collection", "overpayment-detected") => {
                let ev: ce::OverpaymentDetected = msg.decode()?;
                let Some(r) = self.payer(tx, &ev.payer_kind, &ev.payer_id).await? else {
                    return Ok(Handled::default());
                };
                let vars = BTreeMap::from([
                    ("month", ev.month.clone()),
                    ("excess", ev.excess.clone()),
                    ("receipt", ev.tax_receipt_no.clone()),
                ]);
                self.tell(tx, &r, line, "overpayment-detected", vars, &source, at)
                    .await?;
            }
            ("collection", "arrears-cleared") => {
                let ev: ce::ArrearsCleared = msg.decode()?;
                let effect = if ev.paid_on_time {
                    "该月视同按时缴费，待遇不受影响。"
                } else {
                    "相关待遇按规定恢复。"
                };
                let mut recipients = Vec::new();
                if let Some(r) = self.payer(tx, &ev.payer_kind, &ev.payer_id).await? {
                    recipients.push(r);
                }
                for p in &ev.persons {
                    if let Some(r) = self.person_by_id(tx, p).await?
                        && !recipients.contains(&r)
                    {
                        recipients.push(r);
                    }
                }
                for r in recipients {
                    let vars = BTreeMap::from([
                        ("month", ev.month.clone()),
                        ("cleared_at", day(ev.cleared_at.with_timezone(&cst()))),
                        ("effect", effect.to_owned()),
                    ]);
                    self.tell(tx, &r, line, "arrears-cleared", vars, &source, at)
                        .await?;
                }
            }
            ("collection", "debit-failed") => {
                let ev: ce::DebitFailed = msg.decode()?;
                let Some(r) = self.person_by_id(tx, &ev.person_id).await? else {
                    return Ok(Handled::default());
                };
                let vars = BTreeMap::from([("amount", ev.amount.clone()), ("reason", zh_reason(&ev.reason))]);
                self.tell(tx, &r, line, "debit-failed", vars, &source, at).await?;
            }
            ("collection", "contribution-assessed") => {
                let ev: ce::ContributionAssessed = msg.decode()?;
                let Some(r) = self.payer(tx, &ev.payer_kind, &ev.payer_id).await? else {
                    return Ok(Handled::default());
                };
                let vars = BTreeMap::from([
                    ("month", ev.month.clone()),
                    ("amount", ev.total_due.clone()),
                    ("deadline", ev.deadline.to_string()),
                ]);
                self.tell(tx, &r, line, "contribution-assessed", vars.clone(), &source, at)
                    .await?;
                // "Due soon": `reminder_days_before` days before the deadline at 09:00, if
                // that is still ahead.
                let remind = ev.deadline - Days::days(self.notify.reminder_days_before);
                let remind_at = cst()
                    .from_local_datetime(&remind.and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("09:00")))
                    .single()
                    .expect("a fixed offset has no gaps")
                    .with_timezone(&Utc);
                if remind_at > at {
                    let source = format!("reminder:{}", ev.assessment_id);
                    // Batch debit: the bank takes it on the deadline (the 20th in Wuhan), so
                    // the reminder asks for the funds on the card, not for a payment.
                    let template = if ev.batch_debit {
                        "contribution-due-debit"
                    } else {
                        "contribution-due"
                    };
                    self.tell(tx, &r, line, template, vars, &source, remind_at)
                        .await?;
                }
            }
            ("collection", "payment-recorded") => {
                let ev: ce::PaymentRecorded = msg.decode()?;
                let Some(r) = self.payer(tx, &ev.payer_kind, &ev.payer_id).await? else {
                    return Ok(Handled::default());
                };
                let vars = BTreeMap::from([
                    ("month", ev.month.clone()),
                    ("amount", ev.amount.clone()),
                    ("receipt", ev.tax_receipt_no.clone()),
                    ("outstanding", ev.outstanding.clone()),
                ]);
                self.tell(tx, &r, line, "payment-recorded", vars, &source, at)
                    .await?;
                // Money is compared exactly (a decimal string, never a float).
                let paid = rust_decimal::Decimal::from_str_exact(&ev.outstanding)
                    .is_ok_and(|d| d <= rust_decimal::Decimal::ZERO);
                if paid {
                    store::cancel_source(tx, &format!("reminder:{}", ev.assessment_id)).await?;
                }
            }
            ("collection", "arrears-detected") => {
                let ev: ce::ArrearsDetected = msg.decode()?;
                let effect = if ev.system_caused {
                    "因系统原因造成，不影响待遇。".to_owned()
                } else if let Some(d) = ev.benefits_affected_from {
                    format!("如未及时补缴，自{d}起影响医保待遇。")
                } else {
                    "请尽快补缴。".to_owned()
                };
                let mut recipients = Vec::new();
                if let Some(r) = self.payer(tx, &ev.payer_kind, &ev.payer_id).await? {
                    recipients.push(r);
                }
                for p in &ev.persons {
                    if let Some(r) = self.person_by_id(tx, p).await?
                        && !recipients.contains(&r)
                    {
                        recipients.push(r);
                    }
                }
                for r in recipients {
                    let vars = BTreeMap::from([
                        ("month", ev.month.clone()),
                        ("outstanding", ev.outstanding.clone()),
                        ("deadline", ev.deadline.to_string()),
                        ("effect", effect.clone()),
                    ]);
                    self.tell(tx, &r, line, "arrears-detected", vars, &source, at)
                        .await?;
                }
            }
            ("benefits", "settlement-completed") => {
                let b = &msg.body;
                let Some(r) = self.person_by_id(tx, &text(b, "psn_no")).await? else {
                    return Ok(Handled::default());
                };
                let time = text(b, "setl_time");
                let time = DateTime::parse_from_rfc3339(&time).map(day).unwrap_or(time);
                let vars = BTreeMap::from([
                    ("time", time),
                    ("institution", text(b, "fixmedins_code")),
                    ("total", text(b, "medfee_sumamt")),
                    ("fund", text(b, "fund_pay_sumamt")),
                    ("account", text(b, "acct_pay")),
                    ("cash", text(b, "psn_cash_pay")),
                ]);
                self.tell(tx, &r, line, "settlement-completed", vars, &source, at)
                    .await?;
            }
            ("benefits", "settlement-cancelled") => {
                let ev: be::SettlementCancelled = msg.decode()?;
                let Some(r) = self.person_by_id(tx, &ev.psn_no).await? else {
                    return Ok(Handled::default());
                };
                let how = if ev.how == "reversal" { "冲正" } else { "撤销" };
                let vars = BTreeMap::from([
                    ("institution", ev.fixmedins_code.clone()),
                    ("total", ev.medfee_sumamt.clone()),
                    ("how", how.to_owned()),
                    ("fund", ev.fund_pay_sumamt.clone()),
                    ("account", ev.acct_pay.clone()),
                ]);
                self.tell(tx, &r, line, "settlement-cancelled", vars, &source, at)
                    .await?;
            }
            ("benefits", "account-debited") => {
                // A person's own settlement is told by its `settlement-completed`; a relative's
                // care paid from the account (family mutual aid 家庭共济) is told to the holder.
                let ev: be::AccountDebited = msg.decode()?;
                if ev.kind != "mutual-aid" || ev.psn_no == ev.beneficiary_psn_no {
                    return Ok(Handled::default());
                }
                let Some(r) = self.person_by_id(tx, &ev.psn_no).await? else {
                    return Ok(Handled::default());
                };
                let beneficiary = match self.person_by_id(tx, &ev.beneficiary_psn_no).await? {
                    Some(b) => store::name(tx, &b).await?,
                    None => None,
                }
                .unwrap_or_else(|| "家庭成员".to_owned());
                let vars = BTreeMap::from([
                    ("beneficiary", beneficiary),
                    ("amount", ev.amount.clone()),
                    ("balance", ev.balc.clone()),
                ]);
                self.tell(tx, &r, line, "account-mutual-aid", vars, &source, at)
                    .await?;
            }
            ("benefits", name) if crate::benefits::SOCIAL.contains(&name) => {
                return self.on_social(tx, msg).await;
            }
            ("benefits", name) if crate::benefits::FILINGS.contains(&name) => {
                return self.on_filing(tx, msg).await;
            }
            ("benefits", "claim-status-changed") => {
                // A reimbursement claim: told when it is paid, rejected, or needs documents
                // (the other steps are the agency's).
                let b = &msg.body;
                let template = match text(b, "status").as_str() {
                    "paid" => "reimbursement-paid",
                    "rejected" => "claim-rejected",
                    "documents-needed" => "claim-documents-needed",
                    "payment-failed" => "claim-payment-failed",
                    _ => return Ok(Handled::default()),
                };
                let Some(r) = self.person_by_id(tx, &text(b, "psn_no")).await? else {
                    return Ok(Handled::default());
                };
                // The claim's number as the SMS gives it: its last 8 characters.
                let short = short_ref(&text(b, "claim_id"));
                let kind = match text(b, "kind").as_str() {
                    "maternity" => "生育医疗费用",
                    "inpatient" => "住院医疗费用",
                    _ => "门诊医疗费用",
                };
                let vars = BTreeMap::from([
                    ("claim", short),
                    ("kind", kind.to_owned()),
                    ("total", text(b, "medfee_sumamt")),
                    ("amount", text(b, "amount")),
                    ("reason", zh_reason(&text(b, "reason"))),
                ]);
                self.tell(tx, &r, line, template, vars, &source, at).await?;
            }
            ("card-issuance", name) => {
                let ev: contracts::card::events::CardEvent = msg.decode()?;
                let r = format!("person:{}", ev.id_number);
                let (template, vars) = match name {
                    "card-arrived" => (
                        "card-ready",
                        BTreeMap::from([("name", ev.name), ("bank", ev.bank)]),
                    ),
                    "card-activated" => (
                        "card-activated",
                        BTreeMap::from([
                            ("name", ev.name),
                            ("card_number", ev.card_number.unwrap_or_default()),
                        ]),
                    ),
                    "photo-rejected"
                    | "bank-account-failed"
                    | "card-production-failed"
                    | "card-data-error-reported" => (
                        "card-failed",
                        BTreeMap::from([
                            ("name", ev.name),
                            ("reason", ev.reason.unwrap_or_else(|| "办理失败".into())),
                            ("action", ev.action),
                        ]),
                    ),
                    "card-loss-reported" => {
                        let how = if ev.state == "lost-temporarily" {
                            "临时挂失"
                        } else {
                            "正式挂失"
                        };
                        (
                            "card-lost",
                            BTreeMap::from([("name", ev.name), ("how", how.to_owned())]),
                        )
                    }
                    "card-loss-lifted" => ("card-loss-lifted", BTreeMap::from([("name", ev.name)])),
                    "card-replaced" | "card-renewed" => {
                        let how = if name == "card-replaced" {
                            "补办"
                        } else {
                            "换领"
                        };
                        (
                            "card-replacement",
                            BTreeMap::from([("name", ev.name), ("how", how.to_owned())]),
                        )
                    }
                    _ => return Ok(Handled::default()),
                };
                // The card serves both lines; it is the human-resources agency's (12333).
                self.tell(tx, &r, Line::Social, template, vars, &source, at)
                    .await?;
            }
            (_, "deferred-request-processed") => {
                let ev: contracts::freeze::DeferredRequestProcessed = msg.decode()?;
                let Some(r) = ev
                    .subject
                    .filter(|s| s.starts_with("person:") || s.starts_with("employer:"))
                else {
                    return Ok(Handled::default());
                };
                let outcome = match &ev.reply.error {
                    None => "办理成功".to_owned(),
                    Some(e) => format!("未能办理（{}）", e.message),
                };
                let vars = BTreeMap::from([
                    ("received_at", ev.receipt.received_at.map(day).unwrap_or_default()),
                    ("command", command_zh(&ev.command).to_owned()),
                    ("receipt", ev.receipt.id.clone()),
                    ("processed_at", day(ev.processed_at)),
                    ("outcome", outcome),
                ]);
                let shown = if ev.line == Line::Common {
                    Line::Social
                } else {
                    ev.line
                };
                self.tell(tx, &r, shown, "deferred-processed", vars, &source, at)
                    .await?;
            }
            _ => {}
        }
        Ok(Handled::default())
    }

    async fn set_opt_out(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: n::SetOptOut = msg.decode()?;
        let id = contracts::ids::IdNumber::parse(&cmd.id_number)
            .map_err(|e| reject("id_number", ErrorCode::InvalidIdNumber, e.to_string()))?;
        match cmd.category.as_str() {
            "reminder" => {}
            "service" | "announcement" => {
                return Err(reject(
                    "category",
                    ErrorCode::InvalidField,
                    format!(
                        "'{}' messages are required (service notices and outage announcements) and cannot be opted out of; only 'reminder' can",
                        cmd.category
                    ),
                ));
            }
            other => {
                return Err(reject(
                    "category",
                    ErrorCode::InvalidField,
                    format!("no category '{other}'; the one that can be opted out of is 'reminder'"),
                ));
            }
        }
        if cmd.opted_out {
            tx.execute(
                "insert into opt_outs (id_number, category) values ($1, $2) on conflict do nothing",
                &[&id.as_str(), &cmd.category],
            )
            .await?;
        } else {
            tx.execute(
                "delete from opt_outs where id_number = $1 and category = $2",
                &[&id.as_str(), &cmd.category],
            )
            .await?;
        }
        let view = n::OptOutView {
            id_number: id.as_str().to_owned(),
            category: cmd.category,
            opted_out: cmd.opted_out,
        };
        Ok(Handled {
            result: Some(serde_json::to_value(&view).expect("results serialise")),
            ..Default::default()
        })
    }

    async fn list(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: n::ListNotifications = msg.decode()?;
        let limit = i64::from(cmd.limit.unwrap_or(50).clamp(1, 1000));
        let given = [&cmd.id_number, &cmd.credit_code, &cmd.announcement]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if given != 1 {
            return Err(reject(
                "id_number",
                ErrorCode::InvalidField,
                "give exactly one of id_number, credit_code or announcement",
            ));
        }
        let (filter, arg) = if let Some(id) = &cmd.id_number {
            let id = contracts::ids::IdNumber::parse(id)
                .map_err(|e| reject("id_number", ErrorCode::InvalidIdNumber, e.to_string()))?;
            ("recipient = $1", format!("person:{}", id.as_str()))
        } else if let Some(code) = &cmd.credit_code {
            let code = contracts::ids::CreditCode::parse(code)
                .map_err(|e| reject("credit_code", ErrorCode::InvalidCreditCode, e.to_string()))?;
            ("recipient = $1", format!("employer:{}", code.as_str()))
        } else {
            let order = cmd.announcement.clone().expect("one is given");
            (
                "source like $1",
                format!("announcement:{}:%", order.replace('%', "")),
            )
        };
        let rows = tx
            .query(
                &format!(
                    "select notification_id, recipient, phone, category, template, template_version, text,
                            state, parts, attempts, created_at, delivered_at, reason
                     from notifications where {filter} order by created_at desc, notification_id desc limit $2"
                ),
                &[&arg, &limit],
            )
            .await?;
        let notifications = rows
            .iter()
            .map(|r| n::NotificationView {
                notification_id: r.get::<_, uuid::Uuid>(0).to_string(),
                recipient: r.get(1),
                phone: r.get(2),
                category: r.get(3),
                template: format!("{}@{}", r.get::<_, String>(4), r.get::<_, i32>(5)),
                text: r.get(6),
                state: r.get(7),
                parts: r.get(8),
                attempts: r.get(9),
                created_at: r.get::<_, DateTime<Utc>>(10).with_timezone(&cst()),
                delivered_at: r
                    .get::<_, Option<DateTime<Utc>>>(11)
                    .map(|t| t.with_timezone(&cst())),
                reason: r.get(12),
            })
            .collect();
        let mut announcements = Vec::new();
        if let Some(order) = &cmd.announcement {
            let rows = tx
                .query(
                    "select a.phase, a.due_at, a.queued, a.complete,
                            count(*) filter (where n.state = 'delivered'),
                            count(*) filter (where n.state in ('failed', 'expired'))
                     from announcements a
                     left join notifications n on n.source = 'announcement:' || a.order_id || ':' || a.phase
                     where a.order_id = $1
                     group by a.phase, a.due_at, a.queued, a.complete order by a.due_at",
                    &[order],
                )
                .await?;
            if rows.is_empty() {
                return Err(reject(
                    "announcement",
                    ErrorCode::NotFound,
                    format!("no announcement for freeze order '{order}'"),
                ));
            }
            announcements = rows
                .iter()
                .map(|r| n::AnnouncementView {
                    order: order.clone(),
                    phase: r.get(0),
                    due_at: r.get::<_, DateTime<Utc>>(1).with_timezone(&cst()),
                    queued: r.get(2),
                    complete: r.get(3),
                    delivered: r.get(4),
                    failed: r.get(5),
                })
                .collect();
        }
        let list = n::NotificationList {
            notifications,
            announcements,
        };
        Ok(Handled {
            result: Some(serde_json::to_value(&list).expect("results serialise")),
            ..Default::default()
        })
    }
}

#[async_trait]
impl Handler for NotificationHandler {
    async fn handle(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        if msg.kind == MessageKind::Event {
            return self.on_event(tx, msg).await;
        }
        match msg.name.as_str() {
            "set-opt-out" => self.set_opt_out(tx, msg).await,
            "list-notifications" => self.list(tx, msg).await,
            other => Err(HandlerError::Rejected(ErrorBody::new(
                ErrorCode::UnknownCommand,
                format!(
                    "{SERVICE} has no command '{other}'; it has {}",
                    n::COMMANDS.join(", ")
                ),
            ))),
        }
    }
}

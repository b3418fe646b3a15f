//! Card rules without I/O (DOMAIN.md §6, the Baotou notice): the steps of an application,
//! what the person sees at each (colour, text, what to do), and who may pick up, activate
//! and have a card issued instantly. Every refusal names its field and its reason.

use chrono::NaiveDate;
use contracts::ids::IdNumber;
use contracts::{Channel, ErrorBody, ErrorCode, InsuranceType};

pub type Rejection = ErrorBody;

pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    ErrorBody::new(ErrorCode::InvalidField, message).with_field(field)
}

pub fn not_eligible(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    ErrorBody::new(ErrorCode::NotEligible, message).with_field(field)
}

pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    ErrorBody::new(ErrorCode::NotFound, message).with_field(field)
}

pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    ErrorBody::new(ErrorCode::Conflict, message).with_field(field)
}

pub fn id_number(field: &str, s: &str) -> Result<IdNumber, Rejection> {
    IdNumber::parse(s)
        .map_err(|e| ErrorBody::new(ErrorCode::InvalidIdNumber, e.to_string()).with_field(field))
}

/// A non-empty text of at most `max` characters, trimmed.
pub fn text(field: &str, s: &str, max: usize) -> Result<String, Rejection> {
    let t = s.trim();
    if t.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    Ok(t.to_owned())
}

macro_rules! names {
    ($(#[$m:meta])* $ty:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum $ty { $($(#[$vm])* $v),+ }
        impl $ty {
            pub const ALL: &[$ty] = &[$($ty::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$v => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($ty::$v),)+ _ => None }
            }
        }
    };
}

names!(
    /// The steps of an application, in order (Baotou: 信息采集 → 照片采集/审核 → 银行开户 →
    /// 卡片制作 → 物流 → 到达网点 → 领卡 → 激活). An application "is at" the last step done.
    Step {
        InfoCollected = "info-collected",
        PhotoApproved = "photo-approved",
        BankAccountOpened = "bank-account-opened",
        CardProduced = "card-produced",
        Shipped = "shipped",
        ArrivedAtBranch = "arrived-at-branch",
        PickedUp = "picked-up",
        Activated = "activated",
    }
);

names!(
    /// Why an application stopped; each needs an action, and the agency rolls it back.
    Failure {
        PhotoRejected = "photo-rejected",
        BankAccountFailed = "bank-account-failed",
        ProductionFailed = "production-failed",
        CardDataError = "card-data-error",
    }
);

names!(
    Kind {
        First = "first",
        Instant = "instant",
        Replacement = "replacement",
        Renewal = "renewal",
    }
);

names!(
    Loss {
        Temporary = "temporary",
        Formal = "formal",
    }
);

names!(
    /// An application that is no longer the person's current card.
    Closed {
        /// Superseded by a replacement (after loss) or an instant issuance.
        Replaced = "replaced",
        Renewed = "renewed",
        /// Death or emigration (from enrollment's termination).
        Cancelled = "cancelled",
    }
);

names!(
    /// Where a data error on the card face is corrected.
    CorrectionVia {
        Agency = "agency",
        Hospital = "hospital",
    }
);

names!(
    Place {
        Bank = "bank",
        Agency = "agency",
        Hospital = "hospital",
    }
);

names!(
    By {
        Holder = "self",
        Agent = "agent",
        Guardian = "guardian",
    }
);

/// The step a failed application is redone from, after the agency's rollback (回退): a new
/// photo after a rejected one; the bank account again; the card again (after a production
/// failure, or after the data on the face were corrected).
pub fn rollback_target(f: Failure) -> Step {
    match f {
        Failure::PhotoRejected => Step::InfoCollected,
        Failure::BankAccountFailed => Step::PhotoApproved,
        Failure::ProductionFailed | Failure::CardDataError => Step::BankAccountOpened,
    }
}

/// What an application is, as far as the person's status goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardState {
    pub kind: Kind,
    pub step: Step,
    pub failure: Option<Failure>,
    pub reason: Option<String>,
    pub correction_via: Option<CorrectionVia>,
    pub loss: Option<Loss>,
    pub closed: Option<Closed>,
    pub branch: Option<String>,
}

/// The person-visible status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub state: &'static str,
    pub colour: &'static str,
    pub text: String,
    pub action: String,
}

impl CardState {
    /// Whether the bank account is being opened or the card made (Baotou: the hospital
    /// admits by the old procedure meanwhile).
    pub fn in_production(&self) -> bool {
        self.failure.is_none()
            && self.closed.is_none()
            && matches!(self.step, Step::PhotoApproved | Step::BankAccountOpened)
    }

    pub fn shown(&self) -> Shown {
        let reason = self.reason.clone().unwrap_or_default();
        let orange = |state, text: String, action: &str| Shown {
            state,
            colour: "orange",
            text,
            action: action.to_owned(),
        };
        if let Some(c) = self.closed {
            let text = match c {
                Closed::Cancelled => format!("社会保障卡已注销：{reason}"),
                Closed::Replaced => "此卡已由新卡替换，已停止使用".to_owned(),
                Closed::Renewed => "此卡已换卡，已停止使用".to_owned(),
            };
            return Shown {
                state: "cancelled",
                colour: "grey",
                text,
                action: String::new(),
            };
        }
        match self.loss {
            Some(Loss::Temporary) => {
                return orange(
                    "lost-temporarily",
                    "社会保障卡已临时挂失".into(),
                    "找回卡片可办理解挂；未找回请携带身份证到合作银行网点或经办机构办理正式挂失，正式挂失后可补卡",
                );
            }
            Some(Loss::Formal) => {
                return orange(
                    "lost",
                    "社会保障卡已正式挂失".into(),
                    "请携带身份证到合作银行网点或经办机构办理补卡",
                );
            }
            None => {}
        }
        if let Some(f) = self.failure {
            let (text, action) = match f {
                Failure::PhotoRejected => (
                    format!("照片审核未通过：{reason}"),
                    "请重新采集符合要求的照片；经办机构回退后重新审核".to_owned(),
                ),
                Failure::BankAccountFailed => (
                    format!("银行开户失败：{reason}"),
                    "请携带身份证到经办机构核对个人信息；经办机构回退后重新开户".to_owned(),
                ),
                Failure::ProductionFailed => (
                    format!("卡片制作失败：{reason}"),
                    "无需重新采集信息；经办机构回退后重新制卡".to_owned(),
                ),
                Failure::CardDataError => (
                    format!("卡面信息有误：{reason}"),
                    match self.correction_via {
                        Some(CorrectionVia::Hospital) => {
                            "请到就诊医院医保办更正信息，再由医保局审核；经办机构回退后重新制卡".to_owned()
                        }
                        _ => "请携带身份证到经办机构更正信息；经办机构回退后重新制卡".to_owned(),
                    },
                ),
            };
            return Shown {
                state: "failed",
                colour: "red",
                text,
                action,
            };
        }
        let branch = self.branch.clone().unwrap_or_else(|| "合作银行".into());
        match self.step {
            Step::InfoCollected => orange(
                "action-pending",
                "信息已采集，等待照片采集和审核".into(),
                "请到经办机构或合作银行网点采集照片",
            ),
            Step::PhotoApproved => orange(
                "in-progress",
                "照片审核通过，银行开户中".into(),
                "无需办理，请等待银行开户",
            ),
            Step::BankAccountOpened => orange(
                "in-progress",
                "银行开户成功，卡片制作中".into(),
                "无需办理，请等待制卡",
            ),
            Step::CardProduced => orange(
                "in-progress",
                "卡片已制作完成，等待配送".into(),
                "无需办理，请等待卡片到达网点",
            ),
            Step::Shipped => orange("in-progress", "卡片配送中".into(), "无需办理，请等待卡片到达网点"),
            Step::ArrivedAtBranch => Shown {
                state: "action-pending",
                colour: "orange",
                text: format!("卡片已到达{branch}，可以领卡"),
                action: format!(
                    "请本人携带身份证到{branch}领卡；代领须携带本人和代领人身份证；\
                     未成年人由监护人携带户口簿代领"
                ),
            },
            Step::PickedUp => orange(
                "picked-up-not-activated",
                "已领卡，社保功能未激活".into(),
                "请本人到合作银行网点激活；职工医保参保人可由代办人到经办机构激活；\
                 城乡居民医保参保人可到医院医保办激活",
            ),
            Step::Activated => Shown {
                state: "activated",
                colour: "green",
                text: "社会保障卡已激活，可正常使用".into(),
                action: String::new(),
            },
        }
    }
}

/// Documents the holder's side can show.
pub const DOCUMENTS: &[&str] = &["id_card", "agent_id_card", "household_register", "hospital_form"];

pub fn documents(field: &str, docs: &[String]) -> Result<Vec<String>, Rejection> {
    for d in docs {
        if !DOCUMENTS.contains(&d.as_str()) {
            return Err(invalid(
                field,
                format!(
                    "unknown document '{d}' (expected one of {})",
                    DOCUMENTS.join(", ")
                ),
            ));
        }
    }
    Ok(docs.to_vec())
}

/// Under 18 on `on`.
pub fn is_minor(id: &IdNumber, on: NaiveDate) -> bool {
    use chrono::Datelike;
    let b = id.birth_date();
    let mut age = on.year() - b.year();
    if (on.month(), on.day()) < (b.month(), b.day()) {
        age -= 1;
    }
    age < 18
}

/// Who acts for the holder, checked against the documents shown (pick-up and activation):
/// in person with the ID card; an agent with both ID cards; a guardian of a minor with the
/// household register.
pub fn check_representative(
    holder: &IdNumber,
    by: &str,
    rep_id: Option<&str>,
    docs: &[String],
    today: NaiveDate,
) -> Result<By, Rejection> {
    let by = By::parse(by).ok_or_else(|| {
        invalid(
            "representative.by",
            format!("'{by}' is not one of self, agent, guardian"),
        )
    })?;
    let has = |d: &str| docs.iter().any(|x| x == d);
    let rep = |what: &str| -> Result<IdNumber, Rejection> {
        let raw = rep_id.ok_or_else(|| {
            invalid(
                "representative.id_number",
                format!("the {what}'s ID number is required"),
            )
        })?;
        let id = id_number("representative.id_number", raw)?;
        if id == *holder {
            return Err(invalid(
                "representative.id_number",
                format!("the {what} must be someone other than the card holder"),
            ));
        }
        Ok(id)
    };
    match by {
        By::Holder => {
            if !has("id_card") {
                return Err(invalid(
                    "documents",
                    "in person: the holder's ID card (id_card) is required",
                ));
            }
        }
        By::Agent => {
            rep("agent")?;
            if !has("id_card") || !has("agent_id_card") {
                return Err(invalid(
                    "documents",
                    "by an agent: both ID cards are required (id_card and agent_id_card)",
                ));
            }
        }
        By::Guardian => {
            rep("guardian")?;
            if !is_minor(holder, today) {
                return Err(not_eligible(
                    "representative.by",
                    "a guardian acts only for a minor; an adult comes in person or sends an agent",
                ));
            }
            if !has("household_register") {
                return Err(invalid(
                    "documents",
                    "by a guardian: the household register (household_register) is required",
                ));
            }
        }
    }
    Ok(by)
}

/// Where and by whom the social-security function may be activated: at the bank by the
/// holder (or a minor's guardian); at the agency for employee-medical members, also by an
/// agent; at the hospital's insurance office for resident-medical members.
pub fn check_activation(place: Place, by: By, types: &[InsuranceType]) -> Result<(), Rejection> {
    let employee = types.contains(&InsuranceType::EmployeeMedical);
    let resident = types.contains(&InsuranceType::ResidentMedical);
    match place {
        Place::Bank if by == By::Agent => Err(not_eligible(
            "representative.by",
            "an agent cannot activate a card at the bank; employee-medical members may have an agent activate it at the agency",
        )),
        Place::Bank => Ok(()),
        Place::Agency if !employee => Err(not_eligible(
            "place",
            "activation at the agency is for employee-medical members; activate at the bank, or (resident medical) at the hospital's insurance office",
        )),
        Place::Agency => Ok(()),
        Place::Hospital if !resident => Err(not_eligible(
            "place",
            "activation at the hospital's insurance office is for resident-medical members; activate at the bank",
        )),
        Place::Hospital if by == By::Agent => Err(not_eligible(
            "representative.by",
            "an agent may activate only at the agency, and only for employee-medical members",
        )),
        Place::Hospital => Ok(()),
    }
}

/// Instant issuance (即时制卡): only at a bank branch, never by an agent, with the ID card,
/// the household register and the hospital's form.
pub fn check_instant(channel: Option<Channel>, by: By, docs: &[String]) -> Result<(), Rejection> {
    if channel != Some(Channel::Bank) {
        return Err(not_eligible(
            "x-channel",
            "instant issuance is done only at a bank branch (channel bank)",
        ));
    }
    if by == By::Agent {
        return Err(not_eligible(
            "representative.by",
            "instant issuance cannot be done by an agent: the patient (or a minor's guardian) must come",
        ));
    }
    let missing: Vec<&str> = ["id_card", "household_register", "hospital_form"]
        .into_iter()
        .filter(|d| !docs.iter().any(|x| x == d))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(
            "documents",
            format!(
                "instant issuance needs the ID card, the household register and the hospital's form; missing {}",
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Whether a termination's reason is death or emigration: then the card is cancelled (注销).
/// A transfer out of the city or a job change leaves the card as it is.
pub fn cancels_card(reason: &str) -> bool {
    let r = reason.to_lowercase();
    [
        "death",
        "deceased",
        "died",
        "emigrat",
        "死亡",
        "去世",
        "出国定居",
        "移居境外",
        "定居国外",
    ]
    .iter()
    .any(|k| r.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: Step) -> CardState {
        CardState {
            kind: Kind::First,
            step,
            failure: None,
            reason: None,
            correction_via: None,
            loss: None,
            closed: None,
            branch: Some("工商银行昆区支行".into()),
        }
    }

    fn id(s: &str) -> IdNumber {
        IdNumber::parse(s).unwrap()
    }

    // 11010519491231002X is the GB 11643 example; 110105201801010019 a child born 2018.
    const ADULT: &str = "11010519491231002X";

    fn child() -> IdNumber {
        let body = "11010520180101001";
        "0123456789X"
            .chars()
            .find_map(|c| IdNumber::parse(&format!("{body}{c}")).ok())
            .unwrap()
    }

    #[test]
    fn every_step_has_its_colour_state_and_text() {
        let table = [
            (Step::InfoCollected, "action-pending", "orange", "照片"),
            (Step::PhotoApproved, "in-progress", "orange", "银行开户中"),
            (Step::BankAccountOpened, "in-progress", "orange", "卡片制作中"),
            (Step::CardProduced, "in-progress", "orange", "制作完成"),
            (Step::Shipped, "in-progress", "orange", "配送中"),
            (
                Step::ArrivedAtBranch,
                "action-pending",
                "orange",
                "工商银行昆区支行",
            ),
            (Step::PickedUp, "picked-up-not-activated", "orange", "未激活"),
            (Step::Activated, "activated", "green", "已激活"),
        ];
        for (step, st, colour, text) in table {
            let s = state(step).shown();
            assert_eq!((s.state, s.colour), (st, colour), "{step:?}");
            assert!(s.text.contains(text), "{step:?}: {}", s.text);
        }
        assert!(state(Step::PickedUp).shown().action.contains("医院医保办"));
    }

    #[test]
    fn failures_are_red_with_the_reason_and_what_to_do() {
        for f in Failure::ALL {
            let mut s = state(rollback_target(*f));
            s.failure = Some(*f);
            s.reason = Some("原因X".into());
            let shown = s.shown();
            assert_eq!((shown.state, shown.colour), ("failed", "red"));
            assert!(
                shown.text.contains("原因X") && shown.action.contains("回退"),
                "{shown:?}"
            );
        }
        let mut s = state(Step::CardProduced);
        s.failure = Some(Failure::CardDataError);
        s.correction_via = Some(CorrectionVia::Hospital);
        assert!(s.shown().action.contains("医院医保办"));
    }

    #[test]
    fn rollbacks_go_to_the_step_that_can_be_redone() {
        assert_eq!(rollback_target(Failure::PhotoRejected), Step::InfoCollected);
        assert_eq!(rollback_target(Failure::BankAccountFailed), Step::PhotoApproved);
        assert_eq!(
            rollback_target(Failure::ProductionFailed),
            Step::BankAccountOpened
        );
        assert_eq!(rollback_target(Failure::CardDataError), Step::BankAccountOpened);
    }

    #[test]
    fn only_account_opening_and_card_making_count_as_in_production() {
        let yes: Vec<Step> = Step::ALL
            .iter()
            .copied()
            .filter(|s| state(*s).in_production())
            .collect();
        assert_eq!(yes, vec![Step::PhotoApproved, Step::BankAccountOpened]);
        let mut failed = state(Step::BankAccountOpened);
        failed.failure = Some(Failure::ProductionFailed);
        assert!(!failed.in_production());
    }

    #[test]
    fn loss_and_cancellation_override_the_step() {
        let mut s = state(Step::Activated);
        s.loss = Some(Loss::Temporary);
        assert_eq!(s.shown().state, "lost-temporarily");
        s.loss = Some(Loss::Formal);
        assert!(s.shown().action.contains("补卡"));
        s.closed = Some(Closed::Cancelled);
        s.reason = Some("死亡".into());
        assert_eq!((s.shown().state, s.shown().colour), ("cancelled", "grey"));
    }

    #[test]
    fn pick_up_rules() {
        let today = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let holder = id(ADULT);
        let docs = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_representative(&holder, "self", None, &docs(&["id_card"]), today),
            Ok(By::Holder)
        );
        assert_eq!(
            check_representative(&holder, "self", None, &docs(&[]), today)
                .unwrap_err()
                .field
                .as_deref(),
            Some("documents")
        );
        let agent = child();
        let a = agent.as_str();
        assert!(check_representative(&holder, "agent", Some(a), &docs(&["id_card"]), today).is_err());
        assert!(
            check_representative(
                &holder,
                "agent",
                None,
                &docs(&["id_card", "agent_id_card"]),
                today
            )
            .is_err()
        );
        assert!(
            check_representative(
                &holder,
                "agent",
                Some(ADULT),
                &docs(&["id_card", "agent_id_card"]),
                today
            )
            .is_err()
        );
        assert_eq!(
            check_representative(
                &holder,
                "agent",
                Some(a),
                &docs(&["id_card", "agent_id_card"]),
                today
            ),
            Ok(By::Agent)
        );
        // A guardian only for a minor, with the household register.
        let adult_by_guardian = check_representative(
            &holder,
            "guardian",
            Some(a),
            &docs(&["household_register"]),
            today,
        )
        .unwrap_err();
        assert_eq!(adult_by_guardian.code, ErrorCode::NotEligible);
        let minor = child();
        assert!(check_representative(&minor, "guardian", Some(ADULT), &docs(&["id_card"]), today).is_err());
        assert_eq!(
            check_representative(
                &minor,
                "guardian",
                Some(ADULT),
                &docs(&["household_register"]),
                today
            ),
            Ok(By::Guardian)
        );
        assert!(check_representative(&holder, "friend", None, &docs(&["id_card"]), today).is_err());
    }

    #[test]
    fn minors_are_under_eighteen_on_the_day() {
        let c = child(); // born 2018-01-01
        assert!(is_minor(&c, NaiveDate::from_ymd_opt(2035, 12, 31).unwrap()));
        assert!(!is_minor(&c, NaiveDate::from_ymd_opt(2036, 1, 1).unwrap()));
    }

    #[test]
    fn activation_rules() {
        use InsuranceType::*;
        assert!(check_activation(Place::Bank, By::Holder, &[ResidentMedical]).is_ok());
        assert_eq!(
            check_activation(Place::Bank, By::Agent, &[EmployeeMedical])
                .unwrap_err()
                .code,
            ErrorCode::NotEligible
        );
        assert!(check_activation(Place::Agency, By::Agent, &[EmployeeMedical]).is_ok());
        assert!(check_activation(Place::Agency, By::Agent, &[ResidentMedical]).is_err());
        assert!(check_activation(Place::Hospital, By::Holder, &[ResidentMedical]).is_ok());
        assert!(check_activation(Place::Hospital, By::Holder, &[EmployeeMedical]).is_err());
        assert!(check_activation(Place::Hospital, By::Agent, &[ResidentMedical]).is_err());
    }

    #[test]
    fn instant_issuance_rules() {
        let all: Vec<String> = ["id_card", "household_register", "hospital_form"]
            .map(String::from)
            .to_vec();
        assert!(check_instant(Some(Channel::Bank), By::Holder, &all).is_ok());
        assert_eq!(
            check_instant(Some(Channel::Bank), By::Agent, &all)
                .unwrap_err()
                .code,
            ErrorCode::NotEligible
        );
        assert!(check_instant(Some(Channel::Counter), By::Holder, &all).is_err());
        let e = check_instant(Some(Channel::Bank), By::Holder, &all[..2]).unwrap_err();
        assert!(e.message.contains("hospital_form"), "{e}");
    }

    #[test]
    fn only_death_and_emigration_cancel_the_card() {
        assert!(cancels_card("death"));
        assert!(cancels_card("死亡"));
        assert!(cancels_card("emigration to Canada"));
        assert!(!cancels_card("transferred out to 330100"));
        assert!(!cancels_card("left the employer"));
    }

    #[test]
    fn names_round_trip() {
        for s in Step::ALL {
            assert_eq!(Step::parse(s.as_str()), Some(*s));
        }
        for f in Failure::ALL {
            assert_eq!(Failure::parse(f.as_str()), Some(*f));
        }
    }
}

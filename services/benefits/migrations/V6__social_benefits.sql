-- Social-line benefits (issue 10 §5): the social projection (pension, unemployment and
-- work-injury enrollments and contribution months, from enrollment's and collection's
-- social-line events only), the policy data of retirement and the pension formula,
-- retirement applications, awards, and the monthly payment batches to the bank.
-- Months are the first day of the month; money numeric(14, 2), yuan to the fen.

-- Enrollment periods in the social-line insurance types (kept apart from the medical
-- `enrollments`, which eligibility and person-info read as medical).
create table social_enrollments (
    person_id      uuid not null references persons (person_id),
    insurance_type text not null check (insurance_type in ('pension', 'unemployment', 'work_injury')),
    from_month     date not null,
    to_month       date,
    end_reason     text,
    primary key (person_id, insurance_type, from_month),
    check (to_month is null or to_month >= from_month)
);

-- One row per person, type and month paid here (from contribution-settled, social line),
-- with what the month credits to the pension personal account. No foreign key: a payment may
-- arrive before the enrollment event.
create table contribution_months (
    person_id      uuid not null,
    insurance_type text not null,
    month          date not null,
    assessment_id  uuid not null,
    account_credit numeric(14, 2) not null default 0,
    paid_at        timestamptz not null,
    primary key (person_id, insurance_type, month)
);

-- What a transfer-in certificate carried over (months credited elsewhere, pension account).
create table carried_contributions (
    person_id       uuid not null,
    insurance_type  text not null,
    certificate_id  text not null,
    months          integer not null check (months >= 0),
    account_balance numeric(14, 2) not null default 0,
    primary key (person_id, insurance_type, certificate_id)
);

-- The pension formula's figures, by version. PLACEHOLDER values are marked: the notices give
-- no figures, and the real ones are published yearly by the province.
create table pension_policies (
    policy_id             bigint primary key,
    effective_from        date not null unique,
    -- 计发基数: the province's average monthly wage of the previous year. PLACEHOLDER.
    average_wage          numeric(14, 2) not null,
    -- 平均缴费指数 used for everyone (the projection does not hold the bases). PLACEHOLDER.
    contribution_index    numeric(8, 4) not null,
    -- 1 % of the base per contribution year (national formula, 国发〔2005〕38号).
    rate_per_year         numeric(8, 4) not null,
    -- 15 years (national rule).
    minimum_months        integer not null,
    -- Share of a settled pension line credited to the personal account: the employee's 8 %
    -- in full; of a flexible worker's 20 %, 8/20 (national rules).
    employee_account_share numeric(8, 4) not null,
    person_account_share  numeric(8, 4) not null,
    -- An application is in time (pension from the month after the age is reached) when made
    -- before the end of that month plus this many months; later, from the month after
    -- approval without back-pay. PLACEHOLDER (local practice differs).
    grace_months          integer not null,
    source                text not null
);
insert into pension_policies values
    (1, '2020-01-01', 7000.00, 1.0000, 0.0100, 180, 1.0000, 0.4000, 0,
     'formula national (国发〔2005〕38号); average wage, index and grace PLACEHOLDER');

-- Legal retirement age by gender and position (before the 2025 gradual raise, which is not
-- modelled: a row with a later effective_from would carry it).
create table retirement_ages (
    effective_from date not null,
    gender         text not null check (gender in ('male', 'female')),
    position       text not null check (position in ('worker', 'cadre')),
    age            integer not null,
    primary key (effective_from, gender, position)
);
insert into retirement_ages values
    ('1978-06-02', 'male', 'worker', 60),
    ('1978-06-02', 'male', 'cadre', 60),
    ('1978-06-02', 'female', 'worker', 50),
    ('1978-06-02', 'female', 'cadre', 55);

-- 计发月数 by age at retirement (national table, 国发〔2005〕38号 annex).
create table pension_divisors (
    age    integer primary key,
    months integer not null check (months > 0)
);
insert into pension_divisors values (50, 195), (55, 170), (60, 139);

-- When a pension starts, beyond the in-time rule. `freeze-window`: a person who reached the
-- age before the freeze order named ended (its end, or its lift), whose in-time window was
-- still open when it began, and who applies within `window_months` of its end is paid from
-- the month after reaching the age, back-paid.
-- `apply-by`: persons retiring in `retirement_month` who applied at or after `apply_before`
-- are paid from the month after approval.
create table pension_start_rules (
    rule_id          text primary key,
    kind             text not null check (kind in ('freeze-window', 'apply-by')),
    freeze_order_id  text,
    window_months    integer,
    retirement_month date,
    apply_before     timestamptz,
    source           text not null,
    check (kind <> 'freeze-window' or (freeze_order_id is not null and window_months is not null)),
    check (kind <> 'apply-by' or (retirement_month is not null and apply_before is not null))
);
insert into pension_start_rules values
    ('wuhan-2021-missed-during-stop', 'freeze-window', 'wuhan-2021-social-business', 3, null, null,
     '武汉 2021-12: 停机期间未办理的社保业务可在恢复后3个月内补办，待遇补发'),
    ('hangzhou-2020-july-retirees', 'apply-by', null, null, '2020-07-01', '2020-07-17 00:00:00+08',
     '杭州 2020-07: 7月退休人员未在7月17日前申报的，待遇自审批次月起发放');

create table retirement_applications (
    application_id      uuid primary key,
    person_id           uuid not null references persons (person_id),
    id_number           text not null,
    gender              text not null,
    position            text not null check (position in ('worker', 'cadre')),
    retirement_age      integer not null,
    reaches_age_on      date not null,
    applied_at          timestamptz not null,
    status              text not null check (status in ('applied', 'approved', 'rejected')),
    contribution_months integer not null default 0,
    minimum_months      integer not null,
    reason_code         text,
    reason              text,
    -- Approved: the figures (contracts::benefits::social::PensionFigures) and the start.
    pension             jsonb,
    from_month          date,
    start_rule          text,
    reviewer            text,
    reviewed_at         timestamptz,
    created_at          timestamptz not null default now()
);
-- One open or approved application per person at a time.
create unique index retirement_one_live on retirement_applications (person_id)
    where status in ('applied', 'approved');

create table benefit_awards (
    award_id       uuid primary key,
    person_id      uuid not null references persons (person_id),
    id_number      text not null,
    kind           text not null check (kind in ('pension', 'unemployment', 'work-injury')),
    monthly_amount numeric(14, 2) not null check (monthly_amount > 0),
    from_month     date not null,
    to_month       date,
    source_ref     text not null,
    granted_at     timestamptz not null,
    check (to_month is null or to_month >= from_month)
);
create index awards_by_kind on benefit_awards (kind, from_month);

-- One batch per month and kind: a repeated run gives the same batch.
create table benefit_batches (
    batch_id     uuid primary key,
    month        date not null,
    kind         text not null,
    status       text not null check (status in ('ordered', 'reported', 'empty')),
    item_count   bigint not null,
    total        numeric(14, 2) not null,
    paid_count   bigint not null default 0,
    paid_total   numeric(14, 2) not null default 0,
    failed_count bigint not null default 0,
    failed_total numeric(14, 2) not null default 0,
    ordered_at   timestamptz not null,
    reported_at  timestamptz,
    unique (month, kind)
);

create table benefit_batch_items (
    item_id    uuid primary key default gen_random_uuid(),
    batch_id   uuid not null references benefit_batches (batch_id),
    seq        integer not null,
    award_id   uuid not null references benefit_awards (award_id),
    person_id  uuid not null,
    id_number  text not null,
    months     date[] not null,
    amount     numeric(14, 2) not null check (amount > 0),
    card_state text not null,
    status     text not null check (status in ('ordered', 'paid', 'failed')),
    bank_ref   text,
    reason     text,
    unique (batch_id, seq)
);

-- Which item pays an award's month. A month of a failed item is owed again: the next run
-- orders it in a new item.
create table benefit_award_months (
    award_id uuid not null references benefit_awards (award_id),
    month    date not null,
    item_id  uuid not null references benefit_batch_items (item_id),
    primary key (award_id, month, item_id)
);

-- Unemployment benefit months by contribution months (失业保险条例 第十七条: 1 to 5 years up to
-- 12 months, 5 to 10 years up to 18, 10 years or more up to 24; under 1 year none).
create table unemployment_entitlements (
    minimum_months integer primary key,
    benefit_months integer not null
);
insert into unemployment_entitlements values (12, 12), (60, 18), (120, 24);

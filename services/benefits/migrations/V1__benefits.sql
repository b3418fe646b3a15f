-- Benefits (待遇). Months are stored as the first day of the month (date). Money is
-- numeric(14, 2): yuan to the fen.

-- Eligibility projection, built only from enrollment and collection events.
create table persons (
    person_id         uuid primary key,
    id_number         text not null unique,
    name              text not null default '',
    category          text not null,
    minimum_years_met boolean not null default true,
    -- A flexible worker's first enrollment: covered only after 6 consecutive paid months.
    first_enrollment  boolean not null default false,
    updated_at        timestamptz not null default now()
);

-- Enrollment periods per insurance type; closed (to_month, end_reason) when staff leave, an
-- enrollment is suspended or terminated, or the person transfers out.
create table enrollments (
    person_id      uuid not null references persons (person_id),
    insurance_type text not null,
    from_month     date not null,
    to_month       date,
    end_reason     text,
    primary key (person_id, insurance_type, from_month),
    check (to_month is null or to_month >= from_month)
);

-- Months whose contribution was paid in full, per person and insurance type (from
-- contribution-settled). No foreign key: a payment may arrive before the enrollment event.
create table paid_months (
    person_id      uuid not null,
    insurance_type text not null,
    month          date not null,
    assessment_id  uuid not null,
    paid_at        timestamptz not null,
    primary key (person_id, insurance_type, month)
);

-- Benefit-affecting arrears: coverage is blocked from affected_from until restored_from
-- (null while unpaid; equal to affected_from when restored retroactively).
create table arrears (
    assessment_id uuid not null,
    person_id     uuid not null,
    month         date not null,
    affected_from date not null,
    cleared_at    timestamptz,
    restored_from date,
    primary key (assessment_id, person_id),
    check (restored_from is null or restored_from >= affected_from)
);

-- Policy as data, versioned like collection's: a change is a new row; the one it replaces
-- points to its successor. `source` says where the figures come from ("placeholder" for
-- figures no seed publishes).
create table benefit_policies (
    policy_id                   bigserial primary key,
    insutype                    text not null check (insutype in ('310', '390')),
    effective_from              date not null,
    effective_to                date,
    -- 封顶线: what the pooled fund pays a person per calendar year at most.
    annual_cap                  numeric(14, 2) not null check (annual_cap >= 0),
    -- 起付线 for outpatient pooling, per calendar year (inpatient: per admission, by level).
    outpatient_deductible       numeric(14, 2) not null check (outpatient_deductible >= 0),
    -- The large-amount fund (310, 大额) or serious-illness insurance (390, 大病) above the cap.
    large_ratio                 numeric(6, 4) not null check (large_ratio between 0 and 1),
    large_cap                   numeric(14, 2) not null check (large_cap >= 0),
    account_allowed             boolean not null,
    -- Back-payment restores coverage for the arrears gap (true) or from the payment on.
    arrears_restore_retroactive boolean not null,
    source                      text not null,
    reason                      text not null,
    superseded_by               bigint references benefit_policies (policy_id),
    created_at                  timestamptz not null default now(),
    check (effective_to is null or effective_to >= effective_from)
);
create unique index benefit_policies_current on benefit_policies (insutype, effective_from)
    where superseded_by is null;

-- Deductible (inpatient: per admission) and reimbursement ratio by visit kind and
-- institution level (1, 2, 3 = 一级, 二级, 三级).
create table benefit_ratios (
    policy_id  bigint not null references benefit_policies (policy_id),
    kind       text not null check (kind in ('outpatient', 'inpatient')),
    hosp_lv    text not null check (hosp_lv in ('1', '2', '3')),
    deductible numeric(14, 2) not null check (deductible >= 0),
    ratio      numeric(6, 4) not null check (ratio between 0 and 1),
    primary key (policy_id, kind, hosp_lv)
);

-- Designated institutions 定点医药机构 and their level.
create table institutions (
    fixmedins_code text primary key,
    fixmedins_name text not null,
    hosp_lv        text not null check (hosp_lv in ('1', '2', '3')),
    created_at     timestamptz not null default now()
);

-- The medical-insurance catalogue 医保目录: in scope or not, the self-pay share of category
-- B items 乙类先行自付, and a price limit 限价 above which the excess is self-paid.
create table catalogue (
    med_list_codg text primary key,
    name          text not null,
    chrgitm_lv    text not null check (chrgitm_lv in ('1', '2', '3')),
    selfpay_prop  numeric(6, 4) not null check (selfpay_prop between 0 and 1),
    price_limit   numeric(14, 6),
    in_scope      boolean not null
);

-- Visits: outpatient registrations (2201) and admissions (2401). msgid is the
-- institution's message id: a repeat returns the same mdtrt_id.
create table visits (
    mdtrt_id       uuid primary key,
    msgid          text not null unique,
    fixmedins_code text not null references institutions (fixmedins_code),
    person_id      uuid not null references persons (person_id),
    insutype       text not null,
    kind           text not null check (kind in ('outpatient', 'inpatient')),
    ipt_otp_no     text not null,
    begntime       timestamptz not null,
    endtime        timestamptz,
    status         text not null check (status in ('registered', 'admitted', 'discharged', 'cancelled')),
    self_pay       boolean not null,
    note           text,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);

-- Fee lines (2204 / 2301), split by the catalogue when uploaded. A line belongs to a
-- settlement while that settlement stands; a cancelled line is kept, marked.
create table fee_lines (
    line_id             bigserial primary key,
    mdtrt_id            uuid not null references visits (mdtrt_id),
    feedetl_sn          text not null,
    med_list_codg       text not null,
    cnt                 numeric(14, 4) not null,
    pric                numeric(16, 6) not null,
    det_item_fee_sumamt numeric(14, 2) not null,
    fulamt_ownpay_amt   numeric(14, 2) not null,
    overlmt_amt         numeric(14, 2) not null,
    preselfpay_amt      numeric(14, 2) not null,
    inscp_scp_amt       numeric(14, 2) not null,
    selfpay_prop        numeric(6, 4) not null,
    chrgitm_lv          text not null,
    fee_ocur_time       text not null,
    setl_id             uuid,
    cancelled_at        timestamptz,
    -- The parts add up to the line's amount, to the fen.
    check (det_item_fee_sumamt = fulamt_ownpay_amt + overlmt_amt + preselfpay_amt + inscp_scp_amt)
);
-- feedetl_sn is unique within the visit among lines not cancelled.
create unique index fee_lines_live on fee_lines (mdtrt_id, feedetl_sn) where cancelled_at is null;

-- Settlements (2207 / 2304) with their split as replied. Annual totals (deductible used,
-- pooled and large-amount fund paid) are sums over settlements that stand, so a cancel
-- restores them exactly.
create table settlements (
    setl_id           uuid primary key,
    msgid             text not null unique,
    mdtrt_id          uuid not null references visits (mdtrt_id),
    person_id         uuid not null,
    insutype          text not null,
    kind              text not null,
    fixmedins_code    text not null,
    year              integer not null,
    setl_time         timestamptz not null,
    setl_date         date not null,
    medfee_sumamt     numeric(14, 2) not null,
    fulamt_ownpay_amt numeric(14, 2) not null,
    overlmt_selfpay   numeric(14, 2) not null,
    preselfpay_amt    numeric(14, 2) not null,
    inscp_scp_amt     numeric(14, 2) not null,
    act_pay_dedc      numeric(14, 2) not null,
    hifp_pay          numeric(14, 2) not null,
    hifob_pay         numeric(14, 2) not null,
    hifmi_pay         numeric(14, 2) not null,
    fund_pay_sumamt   numeric(14, 2) not null,
    acct_pay          numeric(14, 2) not null,
    acct_mulaid_pay   numeric(14, 2) not null,
    psn_cash_pay      numeric(14, 2) not null,
    mulaid_person_id  uuid,
    result            jsonb not null,
    status            text not null check (status in ('settled', 'cancelled')),
    cancel_how        text check (cancel_how in ('cancel', 'reversal')),
    cancel_msgid      text unique,
    cancelled_at      timestamptz,
    check (medfee_sumamt = fund_pay_sumamt + acct_pay + acct_mulaid_pay + psn_cash_pay),
    check (fund_pay_sumamt = hifp_pay + hifob_pay + hifmi_pay)
);
-- At most one standing settlement per visit.
create unique index settlements_standing on settlements (mdtrt_id) where status = 'settled';
create index settlements_by_person_year on settlements (person_id, insutype, year) where status = 'settled';
create index settlements_by_day on settlements (fixmedins_code, insutype, setl_date);

-- A reversal (2601) that found nothing booked: a late original with this msgid is refused.
create table reversed_msgids (
    omsgid      text primary key,
    msgid       text not null,
    reversed_at timestamptz not null default now()
);

-- The personal account 个人账户: every movement a row; the balance is their sum, never
-- stored alone. Credits are signed positive, debits negative.
create table account_entries (
    entry_id    bigserial primary key,
    person_id   uuid not null,
    kind        text not null check (kind in ('credit', 'settlement', 'mutual-aid', 'reversal')),
    amount      numeric(14, 2) not null,
    reference   text not null,
    setl_id     uuid,
    beneficiary uuid,
    message_id  uuid not null,
    booked_at   timestamptz not null default now()
);
create index account_entries_by_person on account_entries (person_id, entry_id);
create index account_entries_by_reference on account_entries (reference);

-- Family mutual aid 家庭共济: grantor lets relative draw on the grantor's account.
create table mutual_aid (
    grantor       uuid not null,
    relative      uuid not null,
    relation      text not null default '',
    authorised_at timestamptz not null default now(),
    revoked_at    timestamptz,
    primary key (grantor, relative),
    check (grantor <> relative)
);

-- Seed. Every figure below is a PLACEHOLDER: DOMAIN.md gives no deductible, ratio or cap for
-- any city, so these are plausible round figures to be replaced through a new policy row
-- when an agency's published table is at hand.
insert into benefit_policies (insutype, effective_from, annual_cap, outpatient_deductible,
    large_ratio, large_cap, account_allowed, arrears_restore_retroactive, source, reason)
values ('310', '2020-01-01', 150000.00, 700.00, 0.9000, 400000.00, true, false,
        'placeholder', 'seed: employee medical'),
       ('390', '2020-01-01', 100000.00, 200.00, 0.6000, 300000.00, false, false,
        'placeholder', 'seed: resident medical');

insert into benefit_ratios (policy_id, kind, hosp_lv, deductible, ratio)
select p.policy_id, r.kind, r.hosp_lv, r.deductible, r.ratio
from benefit_policies p
join (values
    ('310', 'inpatient', '3', 800.00, 0.8500), ('310', 'inpatient', '2', 400.00, 0.8800),
    ('310', 'inpatient', '1', 200.00, 0.9000), ('310', 'outpatient', '3', 0.00, 0.5000),
    ('310', 'outpatient', '2', 0.00, 0.6000), ('310', 'outpatient', '1', 0.00, 0.7000),
    ('390', 'inpatient', '3', 1000.00, 0.5500), ('390', 'inpatient', '2', 500.00, 0.7000),
    ('390', 'inpatient', '1', 200.00, 0.8500), ('390', 'outpatient', '3', 0.00, 0.4000),
    ('390', 'outpatient', '2', 0.00, 0.5000), ('390', 'outpatient', '1', 0.00, 0.6000)
) as r (insutype, kind, hosp_lv, deductible, ratio) on r.insutype = p.insutype;

insert into institutions (fixmedins_code, fixmedins_name, hosp_lv) values
    ('H42010000001', 'placeholder tertiary hospital 三级医院', '3'),
    ('H42010000002', 'placeholder secondary hospital 二级医院', '2'),
    ('H42010000003', 'placeholder community health centre 一级', '1'),
    ('P42010000001', 'placeholder designated pharmacy 定点药店', '1');

insert into catalogue (med_list_codg, name, chrgitm_lv, selfpay_prop, price_limit, in_scope) values
    ('XA01', 'category A drug 甲类药品 (placeholder)', '1', 0.0000, null, true),
    ('XB01', 'category B drug 乙类药品, 10% self-pay first (placeholder)', '2', 0.1000, null, true),
    ('XC01', 'outside the catalogue 丙类 (placeholder)', '3', 1.0000, null, false),
    ('F001', 'bed day, limit 50.00 (placeholder)', '1', 0.0000, 50.000000, true),
    ('F002', 'examination 检查 (placeholder)', '1', 0.0000, null, true);

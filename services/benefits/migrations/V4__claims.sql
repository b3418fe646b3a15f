-- Manual 手工报销 and maternity 生育 reimbursement claims (issue 10 §2): care paid in cash,
-- split by the same rules as a real-time settlement at that institution on the day of care,
-- reviewed, then paid by the bank into the card's financial account.
create table claims (
    claim_id          uuid primary key,
    person_id         uuid not null,
    insutype          text not null,
    kind              text not null check (kind in ('outpatient', 'inpatient', 'maternity')),
    fixmedins_code    text not null,
    begntime          timestamptz not null,
    year              integer not null,
    cash_reason       text not null,
    lines             jsonb not null,
    medfee_sumamt     numeric(14, 2) not null,
    fulamt_ownpay_amt numeric(14, 2) not null,
    overlmt_selfpay   numeric(14, 2) not null,
    preselfpay_amt    numeric(14, 2) not null,
    inscp_scp_amt     numeric(14, 2) not null,
    -- The split: an estimate until approval, when it is fixed (final_split) and counts in the
    -- year's deductible and caps like a settlement.
    act_pay_dedc      numeric(14, 2) not null,
    hifp_pay          numeric(14, 2) not null,
    hifob_pay         numeric(14, 2) not null,
    hifmi_pay         numeric(14, 2) not null,
    fund_pay_sumamt   numeric(14, 2) not null,
    final_split       boolean not null default false,
    status            text not null check (status in ('submitted', 'under-review', 'documents-needed',
                          'approved', 'rejected', 'paid', 'payment-failed')),
    status_reason     text,
    reviewer          text,
    bank_ref          text,
    submitted_at      timestamptz not null,
    updated_at        timestamptz not null,
    check (fund_pay_sumamt = hifp_pay + hifob_pay + hifmi_pay),
    check (fund_pay_sumamt <= medfee_sumamt)
);
create index claims_by_person_year on claims (person_id, insutype, year)
    where status in ('approved', 'paid', 'payment-failed');

create table claim_documents (
    claim_id     uuid not null references claims (claim_id),
    seq          integer not null,
    kind         text not null,
    uri          text not null,
    paper_mailed boolean not null,
    added_at     timestamptz not null,
    primary key (claim_id, seq)
);

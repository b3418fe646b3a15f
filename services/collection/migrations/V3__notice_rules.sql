-- The rules as the agencies' notices state them (issue 8).

-- Which month a deadline falls in is policy data: 'same_month' (Wuhan, Jinan: month M is paid
-- within M) or 'next_month' (Hangzhou: M is collected in M+1). Rows written before this
-- column were all applied to M+1.
alter table policy_rules
    add column deadline_month text not null default 'next_month'
        check (deadline_month in ('same_month', 'next_month')),
    -- Working days a payment takes to reach the fund (Wuhan 3-5): arrears wait for them.
    add column arrival_working_days integer not null default 0
        check (arrival_working_days between 0 and 10),
    -- The day from which arrears affect benefits at all (Wuhan 2022-04-01); null: no start date.
    add column benefits_affected_from date;

-- Published moves of one month's deadline (Hangzhou: July 2020's declaration for employer
-- payers moved to 08-01 … 08-25 because of its cutover).
create table deadline_overrides (
    region     text not null,
    month      date not null,
    payer_kind text not null check (payer_kind in ('employer', 'person')),
    opens      date not null,
    closes     date not null,
    source     text not null,
    primary key (region, month, payer_kind),
    check (opens <= closes)
);

-- Bank batch-debit agreements (批扣协议) of flexible workers: only they are debited on the
-- debit day; everyone else pays by the ordinary deadline. Every change is a new row.
create table debit_agreements (
    person_id   uuid        not null references persons (person_id),
    line        text        not null check (line in ('medical', 'social')),
    from_month  date        not null,
    signed      boolean     not null,
    bank        text,
    account     text,
    message_id  uuid        not null,
    recorded_at timestamptz not null default now(),
    primary key (person_id, line, from_month)
);

-- A retiree pays only the fixed premium once the minimum contribution years are met (a fact
-- from enrollment); before that, as a flexible worker. Rows projected before this column
-- were retirees assessed as having met them.
alter table persons add column minimum_years_met boolean not null default true;

-- The employer's share is rounded once on the sum of its employees' bases: the difference
-- between that and the per-person amounts shown on the statement is a rounding item with the
-- nil person id.
alter table assessment_items drop constraint assessment_items_share_check;
alter table assessment_items add constraint assessment_items_share_check
    check (share in ('employer', 'employee', 'person', 'rounding'));

-- Arrears: when benefits are affected from, and whether the system caused the delay.
alter table assessments
    add column benefits_affected_from date,
    add column system_caused boolean not null default false;

-- Collection (征收). Months are stored as the first day of the month (date).

-- Policy as data: every change is a new row; the row it replaces points to its successor.
create table policy_rules (
    rule_id                  bigserial   primary key,
    region                   text        not null,
    insurance_type           text        not null,
    line                     text        not null check (line in ('medical', 'social')),
    effective_from           date        not null,
    effective_to             date,
    standard_base            numeric(12, 2) not null check (standard_base > 0),
    floor                    numeric(12, 2) not null check (floor >= 0),
    cap                      numeric(12, 2) not null,
    employer_rate            numeric(8, 6)  not null check (employer_rate >= 0),
    employee_rate            numeric(8, 6)  not null check (employee_rate >= 0),
    flexible_rate            numeric(8, 6)  not null check (flexible_rate >= 0),
    retiree_monthly_premium  numeric(12, 2) not null default 0,
    retiree_pays_rate        boolean     not null default false,
    deadline                 jsonb       not null,
    flexible_deadline        jsonb,
    reason                   text        not null,
    superseded_by            bigint      references policy_rules (rule_id),
    message_id               uuid,
    created_at               timestamptz not null default now(),
    check (floor <= cap),
    check (effective_to is null or effective_to >= effective_from)
);
-- At most one rule in force per region, type and start month.
create unique index policy_rules_current on policy_rules (region, insurance_type, effective_from)
    where superseded_by is null;

-- Working-day calendar exceptions: public holidays and make-up working days (调休).
create table calendar_days (
    day  date primary key,
    kind text not null check (kind in ('holiday', 'workday'))
);

-- Projection of enrollment events: who is covered by what, month by month. A period is
-- closed (to_month) when staff leave, enrollments are suspended, terminated or transferred.
create table persons (
    person_id  uuid primary key,
    id_number  text not null unique,
    category   text not null,
    updated_at timestamptz not null default now()
);

create table coverage (
    person_id            uuid not null references persons (person_id),
    insurance_type       text not null,
    line                 text not null,
    category             text not null,
    employer_credit_code text,
    from_month           date not null,
    to_month             date,
    primary key (person_id, insurance_type, from_month),
    check (to_month is null or to_month >= from_month)
);
create index coverage_by_line on coverage (line, from_month, to_month);

-- Wage declarations are kept as declared; bases are derived from them per year.
create table wage_declarations (
    declaration_id        bigserial primary key,
    person_id             uuid not null references persons (person_id),
    year                  integer not null,
    employer_credit_code  text,
    previous_year_average numeric(12, 2),
    current_year_average  numeric(12, 2),
    current_month         numeric(12, 2),
    chosen_base           numeric(12, 2),
    message_id            uuid not null,
    declared_at           timestamptz not null default now()
);

create table bases (
    person_id      uuid not null references persons (person_id),
    insurance_type text not null,
    year           integer not null,
    base           numeric(12, 2) not null,
    source         text not null,
    clamp          text not null,
    determined_at  timestamptz not null default now(),
    primary key (person_id, insurance_type, year)
);

-- One assessment per payer, month and line; what is due grows or shrinks with adjustment runs.
create table assessments (
    assessment_id uuid primary key,
    line          text not null,
    payer_kind    text not null check (payer_kind in ('employer', 'person')),
    payer_id      text not null,
    month         date not null,
    due           numeric(14, 2) not null default 0,
    paid          numeric(14, 2) not null default 0,
    deadline      date not null,
    in_arrears    boolean not null default false,
    created_run   uuid not null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    unique (line, payer_kind, payer_id, month)
);
create index assessments_open on assessments (line, deadline) where paid < due;

create table assessment_runs (
    run_id       uuid primary key,
    line         text not null,
    month        date not null,
    message_id   uuid not null,
    payers       integer not null,
    items        integer not null,
    total_change numeric(14, 2) not null,
    skipped      integer not null,
    ran_at       timestamptz not null default now()
);

-- Line items: one per person, insurance type and share, rounded to the fen on its own. A
-- later run adds difference items (补差); nothing is rewritten.
create table assessment_items (
    assessment_id  uuid not null references assessments (assessment_id),
    run_id         uuid not null references assessment_runs (run_id),
    person_id      uuid not null,
    insurance_type text not null,
    share          text not null check (share in ('employer', 'employee', 'person')),
    base           numeric(12, 2),
    rate           numeric(8, 6) not null,
    amount         numeric(12, 2) not null
);
create index assessment_items_by_assessment on assessment_items (assessment_id);
create index assessment_items_by_person on assessment_items (person_id);

-- Payments as the tax authority (or the bank) reported them; the receipt number is the
-- payment's own idempotency key.
create table payments (
    receipt_no    text primary key,
    assessment_id uuid not null references assessments (assessment_id),
    amount        numeric(14, 2) not null check (amount > 0),
    paid_at       timestamptz not null,
    channel       text not null check (channel in ('tax', 'bank-debit')),
    message_id    uuid not null,
    recorded_at   timestamptz not null default now()
);

-- Bank batch debit (批扣) for flexible workers: while a batch is open its assessments accept
-- no other payment.
create table debit_batches (
    batch_id   uuid primary key,
    line       text not null,
    month      date not null,
    item_count integer not null,
    total      numeric(14, 2) not null,
    started_at timestamptz not null default now(),
    closed_at  timestamptz
);

create table debit_items (
    batch_id      uuid not null references debit_batches (batch_id),
    assessment_id uuid not null references assessments (assessment_id),
    person_id     text not null,
    amount        numeric(14, 2) not null,
    result        text check (result in ('debited', 'failed')),
    reason        text,
    primary key (batch_id, assessment_id)
);

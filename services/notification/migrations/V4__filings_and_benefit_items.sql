-- What the texts of later events need and only an earlier event carries (this service reads
-- events only, never another service's tables).

-- A filing as `filing-recorded` described it: `filing-approved`, `-rejected` and `-revoked`
-- name the filing by id alone, and their texts say what it was for and how long it holds.
create table filings (
    filing_id text primary key,
    -- the person, as person:<id_number> (found from the event's psn_no)
    recipient text not null,
    -- what the filing is for, as the SMS names it (异地就医（常驻异地工作，就医地370100）)
    description text not null,
    -- how long it holds, as the SMS says it (有效期自2024-05-01起)
    validity text not null
);

-- The items of a benefit payment batch, from `benefit-payment-batch-ordered`: the bank's
-- results name the failed items one by one (`benefit-payment-failed`) and the paid ones only
-- as totals (`benefit-payments-recorded`), so the paid persons are told from here.
create table benefit_items (
    batch_id text not null,
    item_id text not null,
    recipient text not null,
    kind text not null,
    -- the months paid, as the SMS says them (2024-03至2024-05)
    months text not null,
    amount text not null,
    failed boolean not null default false,
    primary key (batch_id, item_id)
);

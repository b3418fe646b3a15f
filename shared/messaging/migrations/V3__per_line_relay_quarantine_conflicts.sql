-- The relay works per line (DESIGN.md §4 "Line isolation"): each line's rows are read by
-- their own relay loop, so one line's backlog never sits in front of the other's. The line
-- is the routing key's first part; generated so that set-based writers need not name it.
alter table outbox
    add column line text generated always as (split_part(routing_key, '.', 1)) stored,
    -- Per-row backoff: a row that failed waits until then; the others go on.
    add column next_attempt_at timestamptz,
    -- Quarantine: set after too many attempts; the relay skips the row until an operator
    -- retries it (insurancectl outbox retry).
    add column failed_at timestamptz;
drop index outbox_unpublished;
create index outbox_pending_by_line on outbox (line, id)
    where published_at is null and failed_at is null;
create index outbox_quarantined on outbox (id) where failed_at is not null and published_at is null;
-- Retention: published rows are pruned by age.
create index outbox_published_at on outbox (published_at) where published_at is not null;

-- The same message id with another type or body is a conflict, not a repeat: the digest of
-- the first body is kept to tell them apart. Null for rows written before this migration.
alter table inbox add column body_digest bytea;
create index inbox_received_at on inbox (received_at);

-- A held request's command was acked when it was taken in, so nothing redelivers it: its final
-- reply, published after the thaw's commit, is recorded here once the broker confirms it. A
-- service that stopped (or a node that failed) between the commit and the confirm leaves the
-- row processed and unconfirmed, and the supervisor sends the stored reply again.
alter table backlog add column reply_confirmed_at timestamptz;
update backlog set reply_confirmed_at = processed_at where processed_at is not null;
create index backlog_reply_unconfirmed on backlog (line, seq)
    where processed_at is not null and reply_confirmed_at is null and reply_to is not null;

-- The probe service of the messaging-core tests: what each message did, in commit order.
create table effects (
    seq        bigserial primary key,
    key        text        not null,
    command    text        not null,
    message_id uuid        not null,
    value      text,
    done_at    timestamptz not null default clock_timestamp()
);
-- A row a test locks from outside, to make a handler wait on it.
create table lockable (id int primary key);
insert into lockable values (1);
-- For the unique-violation case.
create table singles (key text primary key);

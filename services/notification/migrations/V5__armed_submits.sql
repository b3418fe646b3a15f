-- At most once per message, as far as SMPP allows (src/sender.rs): a claimed message is
-- armed before any of it is written, with our reference for the attempt, sent with every
-- part as user_message_reference and given back by the receipts. A receipt whose part id was
-- never recorded (the sender died between the submit_sm_resp and recording it, or the
-- connection went before the response) names the message by reference and phone.
alter table notifications add column armed_at timestamptz;
alter table notifications add column submit_ref int;
-- parts already taken by the SMSC: a message cut short after them gets only the rest
alter table notifications add column resume_from int not null default 0;
create sequence submit_refs;
create index notifications_submit_ref on notifications (submit_ref, phone)
    where submit_ref is not null and state in ('sending', 'queued');

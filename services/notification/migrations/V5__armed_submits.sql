-- At most once per message, as far as SMPP allows (src/sender.rs): a claimed message is
-- armed before any of it is written, with our reference for the attempt, sent with every
-- part as user_message_reference and given back by the receipts. A receipt whose part id was
-- never recorded (the sender died between the submit_sm_resp and recording it, or the
-- connection went before the response) names the message by reference and phone.
alter table notifications add column armed_at timestamptz;
alter table notifications add column submit_ref int;
create sequence submit_refs;
create index notifications_submit_ref on notifications (submit_ref, phone)
    where submit_ref is not null and state in ('sending', 'queued');

-- The sender claims due messages in (not_before, notification_id) order: a bulk announcement
-- queues its recipients with one not_before, so an index on not_before alone left every claim
-- sorting all of them.
drop index notifications_due;
create index notifications_due on notifications (not_before, notification_id) where state = 'queued';

-- Which insurance types each contact holds on each line, so that a termination can take a
-- person off a line's announcements (contacts.lines only grew before): a line is among a
-- contact's lines while at least one type is held on it. `version` is the message id
-- (UUIDv7, time-ordered) of the event that last set the row: an older event arriving late
-- does not undo a newer one (a termination is not undone by the enrolment before it).
create table contact_types (
    recipient text not null,
    line text not null,
    -- an insurance type (employee_medical, pension, ...), or '*': on the line with no types
    -- (an employer), or with types not known (enrolled before this table existed)
    insurance_type text not null,
    held boolean not null,
    version uuid,
    primary key (recipient, line, insurance_type)
);

-- The contacts known so far keep their lines: their types were never recorded, so none of
-- them can be known to have ended.
insert into contact_types (recipient, line, insurance_type, held, version)
select c.recipient, l, '*', true, null from contacts c, unnest(c.lines) l
on conflict do nothing;

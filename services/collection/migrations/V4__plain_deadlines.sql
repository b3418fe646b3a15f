-- Freeze orders move deadlines after an assessment was made (an order announced, extended or
-- lifted later), so each assessment keeps its plain deadline (the policy rule with any
-- published override) and the month it is collected in; `deadline` is the effective one as
-- last derived from the orders in force (issue 7 §4). Extensions are always derived from the
-- plain deadline, never from an already extended one.
alter table assessments
    add column plain_deadline date,
    add column collected_in date;
update assessments set plain_deadline = deadline, collected_in = date_trunc('month', deadline)::date;
alter table assessments
    alter column plain_deadline set not null,
    alter column collected_in set not null;

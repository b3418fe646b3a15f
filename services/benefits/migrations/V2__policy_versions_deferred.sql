-- A new policy version supersedes the current one in the same transaction that inserts it:
-- the successor's id is taken first, so the reference is checked at commit.
alter table benefit_policies drop constraint benefit_policies_superseded_by_fkey;
alter table benefit_policies add constraint benefit_policies_superseded_by_fkey
    foreign key (superseded_by) references benefit_policies (policy_id) deferrable initially deferred;

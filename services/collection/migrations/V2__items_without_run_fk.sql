-- assessment_items.run_id is written only by the assessment itself, in the transaction that
-- inserts the run: the per-row foreign-key check bought nothing and cost ~10 s per million
-- persons (BENCHMARKS.md). The reference to the assessment stays.
alter table assessment_items drop constraint assessment_items_run_id_fkey;
create index assessment_items_by_run on assessment_items (run_id);

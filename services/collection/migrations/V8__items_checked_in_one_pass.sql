-- assessment_items is written by one statement only, the assessment's own (assess.rs), which
-- takes each item's assessment from a join with `assessments`: an item cannot name a missing
-- assessment, and assessments are never deleted. The foreign key checked that again with one
-- index lookup per item (a million-person month writes two million items): the assessment now
-- checks, in the pass it makes anyway, that every difference found its assessment, and fails
-- the run otherwise (issue 8 §2: integrity in one pass, not one lookup per row).
alter table assessment_items drop constraint assessment_items_assessment_id_fkey;
-- No query reads items by run (a run's figures are in `assessment_runs`); the index cost a
-- third of the items' index upkeep.
drop index assessment_items_by_run;

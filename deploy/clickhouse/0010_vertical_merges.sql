-- ccpulse tables, version 10 (issue 20): every merge is vertical. By default ClickHouse merges
-- parts of fewer than 131,072 rows (or tables of fewer than 11 columns) horizontally: every
-- column of every part read at once, with a read and a write buffer per column. While a worker
-- catches up, its writer inserts a part per table per second and merges them in small steps: a
-- horizontal merge of 8 contact_facts parts held 174 MiB, all merges together up to 356 MiB.
-- Vertical merges write the sorting key first, then one column at a time: 23 MiB and ~100 MiB.
-- Measured on 2,000,000 events' flushes replayed into the embedded engine, three runs each:
-- the writer's peak RSS 696-726 MiB -> 589-601 MiB, its CPU 22.0 -> 22.3 us/event (the runs'
-- spread is 20-24). End to end, with the writer's allocator giving pages back after 1 s
-- (pipeline/warehouse_process.py): 707-751 -> 654-685 MiB. The parts, and so analysts'
-- queries, are the same. docs/operations.md, "The writer's memory".
ALTER TABLE {database}.events MODIFY SETTING
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1;
ALTER TABLE {database}.issues MODIFY SETTING
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1;
ALTER TABLE {database}.contributions MODIFY SETTING
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1;
ALTER TABLE {database}.metrics_minute MODIFY SETTING
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1;
ALTER TABLE {database}.contact_facts MODIFY SETTING
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1;
ALTER TABLE {database}.contact_issues MODIFY SETTING
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1;
ALTER TABLE {database}.agent_states MODIFY SETTING
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1;
ALTER TABLE {database}.metrics_minute_owed MODIFY SETTING
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1;

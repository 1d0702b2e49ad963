-- A stage's state when the worker flushed: 'ok', or 'retrying' while a call of that stage is
-- retried with backoff (detail: what and the error, with its ClickHouse code). A retry is then
-- never a silent stall: the board and the pipeline Grafana board can show it.
ALTER TABLE pipeline_metrics ADD COLUMN IF NOT EXISTS state LowCardinality(String) DEFAULT '';
ALTER TABLE pipeline_metrics ADD COLUMN IF NOT EXISTS detail String DEFAULT '';

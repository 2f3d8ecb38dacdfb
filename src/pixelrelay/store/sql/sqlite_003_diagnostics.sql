-- Diagnostics: ingest rejections and read-model indexes (filled by the diagnostics change).
SELECT 1;

-- Browser sessions, cart/checkout token links and identity links (filled by the sessions change).
SELECT 1;

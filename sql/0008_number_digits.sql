-- A DID is the same number with or without its leading '+' (lookups match both forms), so it is unique on
-- its digits: otherwise another tenant could add "15551230000" and take calls for "+15551230000".
ALTER TABLE numbers ADD COLUMN number_digits text GENERATED ALWAYS AS (ltrim(number, '+')) STORED;
CREATE UNIQUE INDEX numbers_number_digits_key ON numbers (number_digits);

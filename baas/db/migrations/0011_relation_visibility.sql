-- Relation targets on writes: a create or update statement ends with check_relation(<every
-- target the row points to through `field` is one the caller may view>, field); a row that
-- fails it raises BA404 naming the field, which the server answers exactly as a missing target
-- (so a record's existence is never revealed to someone who may not view it).
CREATE FUNCTION baas.check_relation(visible boolean, field text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF visible IS NOT TRUE THEN
    RAISE EXCEPTION 'a related record is missing' USING ERRCODE = 'BA404', COLUMN = field;
  END IF;
  RETURN true;
END $$;

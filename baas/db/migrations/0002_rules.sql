-- Access rules for writes: a create or update statement ends with check_rule(<rule on the row as
-- written>); a row that fails it raises BA403, which aborts the statement (and so the write).
CREATE FUNCTION baas.check_rule(allowed boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF allowed IS NOT TRUE THEN
    RAISE EXCEPTION 'the record does not satisfy the collection''s rule' USING ERRCODE = 'BA403';
  END IF;
  RETURN true;
END $$;

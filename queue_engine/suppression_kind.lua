-- Prepended to the scripts that count entries per kind (suppression.py `_script`):
-- an address (a), a domain (d), or either scoped to one API_USER (sa, sd).
local function kind(member)
  local scoped = string.find(member, '\t', 1, true) ~= nil
  if string.sub(member, 1, 1) == '@' then
    return scoped and 'sd' or 'd'
  end
  return scoped and 'sa' or 'a'
end

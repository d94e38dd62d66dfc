-- The staff user behind a credential, in one round trip (it is checked on every request).
-- KEYS[1]: an API token key (a string holding the user id) or a session key (a hash with
-- kind and uid). ARGV[1]: 'token' or 'session'; ARGV[2]: the user key prefix.
-- An API token's value is "uid" or "uid:scope:expires" (access.token_value); its scope and
-- expiry (epoch s, 0 = none) come back as the session fields of a token.
-- Returns {session fields, user fields}, flat, either possibly empty. The user key is not in
-- KEYS because it is known only here: fine on one Redis or Sentinel, not on Redis Cluster.
local session = {}
local uid
if ARGV[1] == 'token' then
  local value = redis.call('GET', KEYS[1])
  if value then
    local scope, expires
    uid, scope, expires = string.match(value, '^([^:]+):?([^:]*):?(%d*)$')
    session = {'scope', scope or '', 'expires', expires or ''}
  end
else
  session = redis.call('HGETALL', KEYS[1])
  for i = 1, #session, 2 do
    if session[i] == 'uid' then uid = session[i + 1] end
  end
end
if not uid then return {session, {}} end
return {session, redis.call('HGETALL', ARGV[2] .. uid)}

-- Count one staff login attempt before its password is checked (auth.login_staff), so that
-- however many requests race, at most the free attempts plus one per lockout are evaluated.
-- KEYS: for each scope, its failure counter then its lock (scopes: the address, and the
-- address with the username). ARGV[1]: the counting window (s); ARGV[2]: the first lockout
-- (s); ARGV[3]: the longest lockout (s); then one free-attempt count per scope.
-- Returns 0 when this attempt may be evaluated, or the seconds left of a lockout (nothing
-- counted). An attempt that uses the last free try (or the first one after a lockout ran
-- out) sets the next, doubled lockout at once; a success clears it (auth.py).
local window, first, longest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local scopes = #KEYS / 2
for i = 1, scopes do
  local ttl = redis.call('TTL', KEYS[2 * i])
  if ttl > 0 then return ttl end
end
for i = 1, scopes do
  local counter, lock, free = KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[3 + i])
  redis.call('SET', counter, 0, 'EX', window, 'NX')
  local n = redis.call('INCR', counter)
  if n >= free then
    local lock_s = math.min(first * 2 ^ math.min(n - free, 10), longest)
    redis.call('SET', lock, '1', 'EX', lock_s)
  end
end
return 0

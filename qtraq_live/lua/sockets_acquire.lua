-- Take one WebSocket slot for a client address across every process (web/socket_limits.py).
-- Each process keeps its open sockets by address in its own hash, whose expiry is its lease
-- (renewed by the process's heartbeat): a crashed process's hash expires, and it is dropped
-- from the set of processes the first time a connect finds it gone, so its sockets stop counting.
-- KEYS[1]: the set of process ids; KEYS[2]: this process's hash.
-- ARGV[1]: the address's field; ARGV[2]: the cap; ARGV[3]: this process's id;
-- ARGV[4]: the hash key's prefix (prefix .. id = a process's hash).
-- Returns 1 (taken), 0 (the address holds the cap already) or -1 (this process's lease lapsed,
-- after a stall or a Redis restart: it writes its counts again and retries); 0 and -1 change nothing.
local field, cap = ARGV[1], tonumber(ARGV[2])
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local held = redis.call('HGET', ARGV[4] .. id, field)
  if held then
    total = total + tonumber(held)
  elseif redis.call('EXISTS', ARGV[4] .. id) == 0 and id ~= ARGV[3] then
    redis.call('SREM', KEYS[1], id)
  end
end
if total >= cap then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
redis.call('HINCRBY', KEYS[2], field, 1)
return 1

-- Give back one WebSocket slot of a client address (web/socket_limits.py). KEYS[1]: this
-- process's hash; ARGV[1]: the address's field. Nothing when the lease is gone (the process
-- stopped, or its count was already dropped): a count never outlives its lease.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1

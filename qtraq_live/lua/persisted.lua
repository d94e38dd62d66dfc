-- After a batch of events is committed to SQLite: give its final tickets' keys their deadline,
-- take it off revived ones, and acknowledge the stream entries: one command and one reply (a
-- pipeline of one PEXPIREAT per key was a tenth of the duties process's CPU under load).
-- KEYS: the keys to expire, then the keys to keep, then the streams.
-- ARGV: the consumer group, how many keys to expire, how many to keep, one deadline (epoch ms)
-- per key to expire, then for each stream how many entries and their ids.
local group, expiring, keeping = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, expiring do
  redis.call('PEXPIREAT', KEYS[i], ARGV[3 + i])
end
for i = expiring + 1, expiring + keeping do
  redis.call('PERSIST', KEYS[i])
end
local at = 4 + expiring
for i = expiring + keeping + 1, #KEYS do
  local n = tonumber(ARGV[at])
  redis.call('XACK', KEYS[i], group, unpack(ARGV, at + 1, at + n))
  at = at + n + 1
end
return #KEYS

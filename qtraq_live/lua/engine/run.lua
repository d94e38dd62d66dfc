-- The dispatch and the change's own record (the end of every script, see lib.lua).

local fn = ops[op]
if not fn then return fail('invalid_field', 'unknown operation ' .. tostring(op), 'op') end
local out = fn()
if ARGV[5] and emitted then
  redis.call('XADD', ARGV[5], 'MAXLEN', '~', ARGV[6], '*', unpack(ARGV, 7))
end
return out

-- The dispatch and the change's own record (the end of every script, see lib.lua).

local fn = ops[op]
if not fn then return fail('invalid_field', 'unknown operation ' .. tostring(op), 'op') end
local out = fn()
if ARGV[5] and not failed then
  local fields = {}
  for k, v in pairs(cjson.decode(ARGV[6])) do
    fields[#fields + 1] = k
    fields[#fields + 1] = v
  end
  redis.call('XADD', ARGV[5], 'MAXLEN', '~', ARGV[7], '*', unpack(fields))
end
return out

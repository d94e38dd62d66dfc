-- A queue paused and resumed (part of a script, see lib.lua).

local function set_paused(paused, etype)
  local q = queue_hash(A.queue)
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  if flag(q.paused) == paused then
    return '{"ok":true,"v":' .. version_json(q.clinic) .. ',"queue":' .. queue_json(q) .. '}'
  end
  if paused then
    redis.call('HSET', K.queue(A.queue), 'paused', '1', 'paused_at', NOW_S)
  else
    local took = (NOW - num(q.paused_at)) / 1000
    local typical = num(q.pause_ema_s)
    if typical == 0 then typical = took else typical = EMA_ALPHA * took + (1 - EMA_ALPHA) * typical end
    redis.call('HSET', K.queue(A.queue), 'paused', '0', 'pause_ema_s', math.floor(typical + 0.5))
  end
  local qs = queue_json(queue_hash(A.queue))
  local v = emit(q.clinic, etype, A.queue, {}, {qs})
  return '{"ok":true,"v":' .. v .. ',"queue":' .. qs .. '}'
end

function ops.pause() return set_paused(true, 'paused') end
function ops.resume() return set_paused(false, 'resumed') end


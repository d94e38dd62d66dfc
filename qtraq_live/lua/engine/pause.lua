-- A queue paused and resumed (part of a script, see lib.lua).

local function set_paused(paused, etype)
  local q = hgetall(K.queue(A.queue))
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  if flag(q.paused) == paused then
    return cjson.encode({ok = true, v = num(redis.call('GET', K.version(q.clinic))), queue = queue_state(A.queue)})
  end
  if paused then
    redis.call('HSET', K.queue(A.queue), 'paused', '1', 'paused_at', NOW)
  else
    local took = (NOW - num(q.paused_at)) / 1000
    local typical = num(q.pause_ema_s)
    if typical == 0 then typical = took else typical = EMA_ALPHA * took + (1 - EMA_ALPHA) * typical end
    redis.call('HSET', K.queue(A.queue), 'paused', '0', 'pause_ema_s', math.floor(typical + 0.5))
  end
  local v = emit(q.clinic, etype, A.queue, {}, {queue_state(A.queue)})
  return cjson.encode({ok = true, v = v, queue = queue_state(A.queue)})
end

function ops.pause() return set_paused(true, 'paused') end
function ops.resume() return set_paused(false, 'resumed') end


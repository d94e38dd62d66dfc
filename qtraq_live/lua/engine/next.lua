-- The "next" press (part of a script, see lib.lua).

function ops.next()
  local ikey
  if A.idempotency_key then
    ikey = K.idem(A.queue, A.idempotency_key)
    local seen = redis.call('GET', ikey)
    if seen then return seen end
  end
  local q = hgetall(K.queue(A.queue))
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  if flag(q.paused) then return fail('queue_paused', 'queue ' .. A.queue .. ' is paused', 'queue') end
  local changed = {}
  local prev_id = redis.call('HGET', K.counters(A.queue), A.counter)
  if prev_id then
    local prev = hgetall(K.ticket(prev_id))
    if prev and (prev.status == 'called' or prev.status == 'serving') then
      set_ticket(prev, {prev_status = prev.status, status = 'done', done_at = tostring(NOW)})
      learn_service_time(prev)
      changed[#changed + 1] = ticket_state(prev)
    end
    redis.call('HDEL', K.counters(A.queue), A.counter)
  end
  redis.call('HSET', K.seen(A.queue), A.counter, NOW)
  local first = redis.call('ZRANGE', K.waiting(A.queue), 0, 0)[1]
  local out
  if first then
    local t = hgetall(K.ticket(first))
    redis.call('ZREM', K.waiting(A.queue), first)
    set_ticket(t, {prev_status = t.status, status = 'called', counter = A.counter, called_at = tostring(NOW)})
    redis.call('HSET', K.counters(A.queue), A.counter, first)
    push_recent(q.clinic, t)
    changed[#changed + 1] = ticket_state(t)
    local qs = queue_state(A.queue)
    local _, ev = emit(q.clinic, 'called', A.queue, changed, {qs})
    out = result(ev, t)
  elseif #changed > 0 then
    local v = emit(q.clinic, 'done', A.queue, changed, {queue_state(A.queue)})
    out = cjson.encode({ok = true, v = v, ticket = cjson.null, queue = queue_state(A.queue)})
  else
    out = cjson.encode({ok = true, v = num(redis.call('GET', K.version(q.clinic))), ticket = cjson.null,
                        queue = queue_state(A.queue)})
  end
  if ikey then redis.call('SET', ikey, out, 'EX', 600) end
  return out
end


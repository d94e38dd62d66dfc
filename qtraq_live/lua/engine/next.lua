-- The "next" press (part of a script, see lib.lua).

function ops.next()
  local ikey
  if A.idempotency_key then
    ikey = K.idem(A.queue, A.idempotency_key)
    local seen = redis.call('GET', ikey)
    if seen then return seen end
  end
  local q = queue_hash(A.queue)
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  if flag(q.paused) then return fail('queue_paused', 'queue ' .. A.queue .. ' is paused', 'queue') end
  local changed = {}
  local prev_id = redis.call('HGET', K.counters(A.queue), A.counter)
  if prev_id then
    local prev = ticket_hash(prev_id)
    if prev and (prev.status == 'called' or prev.status == 'serving') then
      set_ticket(prev, {prev_status = prev.status, status = 'done', done_at = NOW_S})
      learn_service_time(prev, q)
      changed[#changed + 1] = ticket_json(prev)
    end
  end
  redis.call('HSET', K.seen(A.queue), A.counter, NOW_S)
  local firsts = redis.call('ZRANGE', K.waiting(A.queue), 0, 1)
  local first = firsts[1]
  local out
  if first then
    local t = ticket_hash(first)
    redis.call('ZREM', K.waiting(A.queue), first)
    set_ticket(t, {prev_status = t.status, status = 'called', counter = A.counter, called_at = NOW_S})
    hold(A.queue, A.counter, first)
    learn_gap(q, A.how, firsts[2] ~= nil)
    push_recent(q.clinic, t)
    changed[#changed + 1] = ticket_json(t)
    local _, ev = emit(q.clinic, 'called', A.queue, changed, {queue_json(q)})
    out = result(ev, t)
  else
    hold(A.queue, A.counter, nil, NOW_S)
    learn_empty(q)
    local qs = queue_json(q)
    local v
    if #changed > 0 then v = emit(q.clinic, 'done', A.queue, changed, {qs}) else v = version_json(q.clinic) end
    out = '{"ok":true,"v":' .. v .. ',"ticket":null,"queue":' .. qs .. '}'
  end
  if ikey then redis.call('SET', ikey, out, 'EX', 600) end
  return out
end


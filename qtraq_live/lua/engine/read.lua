-- Reads: consistent with their version because the script runs atomically.

local function queue_view(qid)
  local qs = queue_state(qid)
  local waiting = {}
  for _, id in ipairs(redis.call('ZRANGE', K.waiting(qid), 0, -1)) do
    waiting[#waiting + 1] = ticket_state(hgetall(K.ticket(id)))
  end
  local serving = {}
  local flat = redis.call('HGETALL', K.counters(qid))
  for i = 2, #flat, 2 do
    local t = hgetall(K.ticket(flat[i]))
    if t then serving[#serving + 1] = ticket_state(t) end
  end
  qs.waiting = waiting
  qs.now_serving = serving
  return qs
end

function ops.queue_snapshot()
  local clinic = redis.call('HGET', K.queue(A.queue), 'clinic')
  if not clinic then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  return cjson.encode({ok = true, v = num(redis.call('GET', K.version(clinic))), queue = queue_view(A.queue)})
end

function ops.clinic_snapshot()
  if redis.call('EXISTS', K.clinic(A.clinic)) == 0 then return fail('not_found', 'unknown clinic ' .. A.clinic, 'clinic') end
  local queues = {}
  for _, qid in ipairs(redis.call('ZRANGE', K.clinic_queues(A.clinic), 0, -1)) do
    queues[#queues + 1] = queue_view(qid)
  end
  local recent = {}
  for _, r in ipairs(redis.call('LRANGE', K.recent(A.clinic), 0, 19)) do recent[#recent + 1] = cjson.decode(r) end
  return cjson.encode({ok = true, v = num(redis.call('GET', K.version(A.clinic))), clinic = clinic_state(A.clinic),
                       queues = queues, recent = recent})
end

function ops.ticket()
  local id = A.ticket
  if A.token then
    id = redis.call('GET', K.token(A.token))
    if not id then return fail('not_found', 'unknown ticket token', 'token') end
  end
  local t, err = load_ticket(id)
  if not t then return err end
  return cjson.encode({ok = true, v = num(redis.call('GET', K.version(t.clinic))), ticket = ticket_state(t),
                       rank = rank_of(t), queue = queue_state(t.queue), token = t.token})
end

